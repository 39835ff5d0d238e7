package rtm2

// The functions the rtm2 library calls (on a client's dispatcher thread): they copy what they
// are given and hand it to Go, never blocking.

/*
#include "rtm2.h"
*/
import "C"

import (
	"unsafe"
)

//export goOnComplete
func goOnComplete(ud unsafe.Pointer, _ C.uint64_t, status C.int32_t, r *C.rtm2_result) {
	v, ok := pendings.LoadAndDelete(uint64(uintptr(ud)))
	if !ok {
		return
	}
	p := v.(*pending)
	o := outcome{status: int32(status)}
	if r != nil {
		o.reason = gostr(r.reason)
		if status == 0 && p.decode != nil {
			o.value = p.decode(r)
		}
	}
	p.ch <- o
}

func clientOf(ud unsafe.Pointer) *client {
	v, ok := clients.Load(uintptr(ud))
	if !ok {
		return nil
	}
	return v.(*client)
}

//export goOnDestroy
func goOnDestroy(ud unsafe.Pointer) {
	clients.Delete(uintptr(ud))
}

//export goOnMessage
func goOnMessage(ud unsafe.Pointer, ev *C.rtm2_message_event) {
	goOnMessages(ud, ev, 1)
}

//export goOnMessages
func goOnMessages(ud unsafe.Pointer, evs *C.rtm2_message_event, count C.size_t) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range cslice(evs, count) {
		m := &Message{
			UserId:     c.publisherName(ev.publisher),
			Type:       MessageType(ev.message_type),
			Message:    C.GoBytes(unsafe.Pointer(ev.payload), C.int(ev.payload_len)),
			CustomType: gostr(ev.custom_type),
			Recovered:  bool(ev.recovered),
		}
		// The channel and topic are only looked up: views of the C strings, not copies.
		c.routeMessageLocked(ChannelType(ev.channel_type), view(ev.channel), view(ev.topic), m)
	}
}

// view is the C string as a Go string without copying it: valid only during the callback and
// never to be kept.
func view(p *C.char) string {
	if p == nil {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), cstrlen(p))
}

// cstrlen is strlen in Go (a cgo call per string would cost more than the scan).
func cstrlen(p *C.char) int {
	n := 0
	for b := unsafe.Pointer(p); *(*byte)(unsafe.Add(b, n)) != 0; n++ {
	}
	return n
}

// publisherName is the publisher's user id, reusing the previous message's string when it is
// the same user (messages of one publisher come in runs). Called on the client's dispatcher
// thread only.
func (c *client) publisherName(p *C.char) string {
	if v := view(p); v == c.lastPublisher {
		return c.lastPublisher
	}
	c.lastPublisher = gostr(p)
	return c.lastPublisher
}

//export goOnTopic
func goOnTopic(ud unsafe.Pointer, ev *C.rtm2_topic_event) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	channel := gostr(ev.channel)
	publisher := gostr(ev.publisher)
	t := TopicEventType(ev.event_type)
	snapshot := topicSnapshot(ev.topics, ev.topic_count)
	if t == TopicEventSnapshot && ev.topic_count == 0 {
		// A snapshot of no topics (e.g. after a reconnect) is still news: one event, no topic.
		c.routeTopicEvent(channel, &TopicEvent{Type: t, Channel: channel, UserId: publisher, Snapshot: snapshot})
		return
	}
	for _, info := range cslice(ev.topics, ev.topic_count) {
		topic := gostr(info.topic)
		e := &TopicEvent{Type: t, Channel: channel, UserId: publisher, Topic: topic}
		if t == TopicEventSnapshot {
			e.Snapshot = snapshot
		}
		c.routeTopicEvent(channel, e)
	}
}

// topicSnapshot: topic -> its publishers.
func topicSnapshot(topics *C.rtm2_topic_info, n C.size_t) map[string][]string {
	out := map[string][]string{}
	for _, info := range cslice(topics, n) {
		users := []string{}
		for _, p := range cslice(info.publishers, info.publisher_count) {
			users = append(users, gostr(p.user_id))
		}
		out[gostr(info.topic)] = users
	}
	return out
}

//export goOnLinkState
func goOnLinkState(ud unsafe.Pointer, ev *C.rtm2_link_state_event) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	c.routeLinkState(linkState{
		current:    uint32(ev.current),
		previous:   uint32(ev.previous),
		operation:  uint32(ev.operation),
		reason:     uint32(ev.reason),
		text:       gostr(ev.reason_text),
		channel:    gostr(ev.channel),
		resumed:    bool(ev.is_resumed),
		affected:   strs(ev.affected_channels, ev.affected_channel_count),
		unrestored: strs(ev.unrestored_channels, ev.unrestored_channel_count),
	})
}

//export goOnTokenWillExpire
func goOnTokenWillExpire(ud unsafe.Pointer, channel *C.char) {
	if c := clientOf(ud); c != nil {
		c.routeTokenWillExpire(gostr(channel))
	}
}

//export goOnOverflow
func goOnOverflow(ud unsafe.Pointer, dropped C.uint64_t) {
	if c := clientOf(ud); c != nil {
		c.noteDropped("the SDK's event queue", uint64(dropped))
	}
}

func states(items *C.rtm2_state_item, n C.size_t) map[string]string {
	out := map[string]string{}
	for _, it := range cslice(items, n) {
		out[gostr(it.key)] = gostr(it.value)
	}
	return out
}

func userStates(us *C.rtm2_user_state, n C.size_t) map[string]*UserState {
	out := map[string]*UserState{}
	for _, u := range cslice(us, n) {
		id := gostr(u.user_id)
		out[id] = &UserState{UserId: id, State: states(u.states, u.state_count)}
	}
	return out
}

//export goOnPresence
func goOnPresence(ud unsafe.Pointer, ev *C.rtm2_presence_event) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	e := &PresenceEvent{
		Type:   PresenceEventType(ev.event_type),
		UserId: gostr(ev.publisher),
		Items:  states(ev.states, ev.state_count),
		States: map[string]map[string]string{},
	}
	var snapshot map[string]*UserState
	if e.Type == PresenceTypeSnapshot {
		snapshot = userStates(ev.snapshot, ev.snapshot_count)
		for id, u := range snapshot {
			e.States[id] = u.State
		}
	}
	if iv := ev.interval; iv != nil {
		e.Joined = strs(iv.joined, iv.joined_count)
		e.Left = strs(iv.left, iv.left_count)
		e.Timeout = strs(iv.timed_out, iv.timed_out_count)
		for id, u := range userStates(iv.states, iv.state_count) {
			e.States[id] = u.State
		}
	}
	c.routePresence(chKey{gostr(ev.channel), ChannelType(ev.channel_type)}, e, snapshot)
}

func metadataItems(m *C.rtm2_metadata) (int64, map[string]*MetadataItem) {
	out := map[string]*MetadataItem{}
	if m == nil {
		return 0, out
	}
	for _, it := range cslice(m.items, m.item_count) {
		k := gostr(it.key)
		out[k] = &MetadataItem{
			Key:      k,
			Value:    gostr(it.value),
			Author:   gostr(it.author),
			Revision: int64(it.revision),
			UpdateTs: int64(it.updated_ms),
		}
	}
	return int64(m.major_revision), out
}

//export goOnStorage
func goOnStorage(ud unsafe.Pointer, ev *C.rtm2_storage_event) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	major, items := metadataItems(ev.data)
	e := &StorageEvent{EventType: StorageEventType(ev.event_type), MajorRevision: major, Items: items}
	target := gostr(ev.target)
	if ev.storage_type == C.RTM2_STORAGE_TYPE_USER {
		c.routeUserMetadata(target, e)
	} else {
		c.routeChannelMetadata(chKey{target, ChannelType(ev.channel_type)}, e)
	}
}

func lockDetails(ds *C.rtm2_lock_detail, n C.size_t) []*LockDetail {
	out := []*LockDetail{}
	for _, d := range cslice(ds, n) {
		out = append(out, &LockDetail{
			Name: gostr(d.name), Owner: gostr(d.owner), TTL: uint32(d.ttl_s), FencingToken: uint64(d.fencing_token),
		})
	}
	return out
}

//export goOnLock
func goOnLock(ud unsafe.Pointer, ev *C.rtm2_lock_event) {
	c := clientOf(ud)
	if c == nil {
		return
	}
	e := &LockEvent{Type: LockEventType(ev.event_type)}
	if e.Type == LockTypeSnapshot {
		e.Details = lockDetails(ev.snapshot, ev.snapshot_count)
	} else {
		e.Details = []*LockDetail{{
			Name: gostr(ev.lock_name), Owner: gostr(ev.owner), TTL: uint32(ev.ttl_s),
			FencingToken: uint64(ev.fencing_token),
		}}
	}
	c.routeLock(chKey{gostr(ev.channel), ChannelType(ev.channel_type)}, e)
}
