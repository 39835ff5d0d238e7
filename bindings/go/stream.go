package rtm2

/*
#include <stdlib.h>
#include "rtm2.h"
*/
import "C"

import (
	"unsafe"
)

// streamChannel implements StreamChannel over an rtm2 stream channel handle.
type streamChannel struct {
	c    *client
	name string
	h    *C.rtm2_stream_channel // made at the first operation; under c.life
	// Under c.mu:
	events    *outbox[*TopicEvent]
	tokens    *outbox[string]
	topicMsgs map[string]*outbox[*Message]
}

func (s *streamChannel) ChannelName() string { return s.name }

// handle returns the stream channel's C handle (made now if needed) with the client's read
// lock held; call s.c.release.
func (s *streamChannel) handle() (*C.rtm2_stream_channel, error) {
	h, err := s.c.handle()
	if err != nil {
		return nil, err
	}
	if s.h != nil {
		return s.h, nil
	}
	s.c.release()
	s.c.life.Lock()
	if s.h == nil && s.c.h != nil {
		name := cstr(s.name)
		var out *C.rtm2_stream_channel
		st, why := syncCall(func() C.int32_t { return C.rtm2_client_create_stream_channel(h, name, &out) })
		free(name)
		if st != 0 {
			s.c.life.Unlock()
			return nil, s.c.fail("StreamChannel", st, why)
		}
		s.h = out
	}
	s.c.life.Unlock()
	return s.handle()
}

// forgetTopics forgets the topics' Go channels (left, or the session ended), under c.mu.
func (s *streamChannel) forgetTopics() {
	for _, o := range s.topicMsgs {
		o.close()
	}
	s.topicMsgs = map[string]*outbox[*Message]{}
}

// free releases the handle (the client is being freed; under its write lock).
func (s *streamChannel) free() {
	if s.h != nil {
		C.rtm2_stream_channel_free(s.h)
		s.h = nil
	}
}

func (s *streamChannel) op(name string, start func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t,
	decode func(*C.rtm2_result) any) (any, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	wait := begin(func(tok unsafe.Pointer) C.int32_t { return start(h, completeCb(), tok) }, decode)
	s.c.release()
	o := <-wait
	if o.status != 0 {
		return nil, s.c.fail(name, o.status, o.reason)
	}
	return o.value, nil
}

func (s *streamChannel) Join(opts ...StreamOption) (map[string][]string, <-chan *TopicEvent, <-chan string, error) {
	o := &StreamOptions{}
	for _, f := range opts {
		f(o)
	}
	var flags C.uint32_t
	if o.Presence {
		flags |= C.RTM2_JOIN_WITH_PRESENCE
	}
	if o.Metadata {
		flags |= C.RTM2_JOIN_WITH_METADATA
	}
	if o.Lock {
		flags |= C.RTM2_JOIN_WITH_LOCK
	}
	if o.BeQuiet {
		flags |= C.RTM2_JOIN_BE_QUIET
	}
	key := chKey{s.name, ChannelTypeStream}
	s.c.mu.Lock()
	undo := s.c.openFeeds(key, o.Presence, o.Metadata, o.Lock)
	s.c.mu.Unlock()
	var token *C.char
	if o.Token != "" {
		token = cstr(o.Token)
		defer free(token)
	}
	v, err := s.op("Join", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_join(h, token, flags, cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		if r.join == nil {
			return map[string][]string{}
		}
		return topicSnapshot(r.join.topics, r.join.topic_count)
	})
	if err != nil {
		s.c.mu.Lock()
		undo()
		s.c.mu.Unlock()
		return nil, nil, nil, err
	}
	return v.(map[string][]string), s.events.ch, s.tokens.ch, nil
}

func (s *streamChannel) Leave() error {
	_, err := s.op("Leave", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_leave(h, cb, tok, nil)
	}, nil)
	if err == nil {
		s.c.mu.Lock()
		s.c.closeFeeds(chKey{s.name, ChannelTypeStream})
		s.forgetTopics()
		s.c.mu.Unlock()
	}
	return err
}

// priorities: the Go SDK's StreamPriority -> the C API's.
var priorities = map[StreamPriority]C.uint32_t{
	StreamQosPriorityHighest: C.RTM2_MESSAGE_PRIORITY_HIGHEST,
	StreamQosPriorityHigh:    C.RTM2_MESSAGE_PRIORITY_HIGH,
	StreamQosPriorityNormal:  C.RTM2_MESSAGE_PRIORITY_NORMAL,
	StreamQosPriorityLow:     C.RTM2_MESSAGE_PRIORITY_LOW,
}

// JoinTopic joins a topic; the default priority is StreamQosPriorityNormal.
func (s *streamChannel) JoinTopic(topic string, opts ...StreamOption) error {
	o := &StreamOptions{Priority: StreamQosPriorityNormal}
	for _, f := range opts {
		f(o)
	}
	p, ok := priorities[o.Priority]
	if !ok {
		return s.c.fail("JoinTopic", 10014, "unknown StreamPriority")
	}
	var jo C.rtm2_join_topic_options
	C.rtm2_join_topic_options_init(&jo)
	jo.qos = C.uint32_t(o.QOS)
	jo.priority = p
	jo.sync_with_media = C.bool(o.SyncMedia)
	if o.Meta != "" {
		jo.meta = cstr(o.Meta)
		defer free(jo.meta)
	}
	t := cstr(topic)
	defer free(t)
	_, err := s.op("JoinTopic", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_join_topic(h, t, &jo, cb, tok, nil)
	}, nil)
	return err
}

func (s *streamChannel) PublishTopic(topic string, message []byte, opts ...StreamOption) error {
	o := &StreamOptions{}
	for _, f := range opts {
		f(o)
	}
	var mo C.rtm2_topic_message_options
	C.rtm2_topic_message_options_init(&mo)
	mo.message_type = C.uint32_t(o.Type)
	mo.send_ts = C.uint64_t(o.SendTs)
	if o.CustomType != "" {
		mo.custom_type = cstr(o.CustomType)
		defer free(mo.custom_type)
	}
	t := cstr(topic)
	defer free(t)
	var payload unsafe.Pointer
	if len(message) > 0 {
		payload = C.CBytes(message)
		defer C.free(payload)
	}
	_, err := s.op("PublishTopic", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_publish_topic(h, t, payload, C.size_t(len(message)), &mo, cb, tok, nil)
	}, nil)
	return err
}

func (s *streamChannel) LeaveTopic(topic string) error {
	t := cstr(topic)
	defer free(t)
	_, err := s.op("LeaveTopic", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_leave_topic(h, t, cb, tok, nil)
	}, nil)
	return err
}

// cstrs is a C array of C strings; free it with the returned func.
func cstrs(ss []string) (**C.char, func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	arr := (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	view := unsafe.Slice(arr, len(ss))
	for i, s := range ss {
		view[i] = cstr(s)
	}
	return arr, func() {
		for _, p := range view {
			free(p)
		}
		C.free(unsafe.Pointer(arr))
	}
}

// SubscribeTopic subscribes to publishers of a topic; when some could not be subscribed the
// error is ERROR_CHANNEL_INVALID_USER_LIST (or their code) and the channel is still returned
// for those that were.
func (s *streamChannel) SubscribeTopic(topic string, userIds []string) (<-chan *Message, error) {
	s.c.mu.Lock()
	msgs, had := s.topicMsgs[topic]
	if !had {
		msgs = newOutbox[*Message](s.c, "messages of topic "+topic+" of "+s.name)
		s.topicMsgs[topic] = msgs
	}
	s.c.mu.Unlock()
	t := cstr(topic)
	defer free(t)
	users, done := cstrs(userIds)
	defer done()
	v, err := s.op("SubscribeTopic", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_subscribe_topic(h, t, users, C.size_t(len(userIds)), cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		if r.subscribe_topic == nil || r.subscribe_topic.failed_count == 0 {
			return int32(0)
		}
		return int32(cslice(r.subscribe_topic.failed, r.subscribe_topic.failed_count)[0].code)
	})
	if err != nil {
		if !had {
			s.c.mu.Lock()
			delete(s.topicMsgs, topic)
			msgs.close()
			s.c.mu.Unlock()
		}
		return nil, err
	}
	if code := v.(int32); code != 0 {
		return msgs.ch, s.c.fail("SubscribeTopic", code, "some users could not be subscribed")
	}
	return msgs.ch, nil
}

func (s *streamChannel) UnsubscribeTopic(topic string, userIds []string) error {
	t := cstr(topic)
	defer free(t)
	users, done := cstrs(userIds)
	defer done()
	_, err := s.op("UnsubscribeTopic", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_unsubscribe_topic(h, t, users, C.size_t(len(userIds)), cb, tok, nil)
	}, nil)
	return err
}

// GetSubscribedUsers answers at once, from the client's own state (the C API's synchronous
// rtm2_stream_channel_subscribed_users): the publishers subscribed to in topic, sorted; empty
// when none.
func (s *streamChannel) GetSubscribedUsers(topic string) ([]string, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.c.release()
	t := cstr(topic)
	defer free(t)
	var list *C.rtm2_user_list
	st, why := syncCall(func() C.int32_t { return C.rtm2_stream_channel_subscribed_users(h, t, &list) })
	if st != 0 {
		return nil, s.c.fail("GetSubscribedUsers", st, why)
	}
	defer C.rtm2_user_list_free(list)
	return strs(list.users, list.count), nil
}

func (s *streamChannel) RenewToken(token string) error {
	t := cstr(token)
	defer free(t)
	_, err := s.op("RenewToken", func(h *C.rtm2_stream_channel, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_stream_channel_renew_token(h, t, cb, tok, nil)
	}, nil)
	return err
}
