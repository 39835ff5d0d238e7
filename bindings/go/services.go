package rtm2

/*
#include <stdlib.h>
#include "rtm2.h"
*/
import "C"

import (
	"time"
	"unsafe"
)

// presence, storage and locks are the client seen through one service's interface.
type presence client
type storage client
type locks client

// awaitFeed waits (at most the request timeout) for a feed's first snapshot.
func awaitFeed[E any, S any](c *client, f *feed[E, S], notSubscribed error, timeout error) (S, <-chan E, error) {
	var zero S
	if f == nil {
		return zero, nil, notSubscribed
	}
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-f.ready:
	case <-t.C:
		return zero, nil, timeout
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return f.snap, f.ch.ch, nil
}

func notThere(t ChannelType) error {
	if t == ChannelTypeStream {
		return ERROR_CHANNEL_NOT_JOINED
	}
	return ERROR_CHANNEL_NOT_SUBSCRIBED
}

// ---- presence ----

func (p *presence) GetPresenceChan(channel string, channelType ChannelType) (map[string]*UserState, <-chan *PresenceEvent, error) {
	c := (*client)(p)
	c.mu.Lock()
	f := c.presence[chKey{channel, channelType}]
	c.mu.Unlock()
	return awaitFeed(c, f, notThere(channelType), ERROR_PRESENCE_OPERATION_TIMEOUT)
}

func onlineOptions(opts []PresenceOption) (*PresenceOptions, C.rtm2_get_online_users_options, func()) {
	o := &PresenceOptions{UserId: true}
	for _, f := range opts {
		f(o)
	}
	var co C.rtm2_get_online_users_options
	C.rtm2_get_online_users_options_init(&co)
	co.include_user_id = C.bool(o.UserId)
	co.include_state = C.bool(o.State)
	done := func() {}
	if o.Page != "" {
		co.page = cstr(o.Page)
		done = func() { free(co.page) }
	}
	return o, co, done
}

type onlineUsers struct {
	users map[string]*UserState
	next  string
}

func (p *presence) WhoNow(channel string, channelType ChannelType, opts ...PresenceOption) (map[string]*UserState, string, error) {
	return p.online("WhoNow", channel, channelType, opts)
}

func (p *presence) GetOnlineUsers(channel string, channelType ChannelType, opts ...PresenceOption) (map[string]*UserState, string, error) {
	return p.online("GetOnlineUsers", channel, channelType, opts)
}

func (p *presence) online(name, channel string, channelType ChannelType, opts []PresenceOption) (map[string]*UserState, string, error) {
	_, co, done := onlineOptions(opts)
	defer done()
	ch := cstr(channel)
	defer free(ch)
	v, err := (*client)(p).op(name, func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_presence_get_online_users(h, ch, C.uint32_t(channelType), &co, cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		if r.online_users == nil {
			return onlineUsers{users: map[string]*UserState{}}
		}
		return onlineUsers{
			users: userStates(r.online_users.occupants, r.online_users.occupant_count),
			next:  gostr(r.online_users.next_page),
		}
	})
	if err != nil {
		return nil, "", err
	}
	u := v.(onlineUsers)
	return u.users, u.next, nil
}

func (p *presence) WhereNow(userId string) ([]*ChannelInfo, error) {
	return p.channels("WhereNow", userId)
}

func (p *presence) GetUserChannels(userId string) ([]*ChannelInfo, error) {
	return p.channels("GetUserChannels", userId)
}

func (p *presence) channels(name, userId string) ([]*ChannelInfo, error) {
	u := cstr(userId)
	defer free(u)
	v, err := (*client)(p).op(name, func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_presence_get_user_channels(h, u, cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		out := []*ChannelInfo{}
		if r.user_channels != nil {
			for _, ci := range cslice(r.user_channels.channels, r.user_channels.count) {
				out = append(out, &ChannelInfo{Channel: gostr(ci.channel), Type: ChannelType(ci.channel_type)})
			}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return v.([]*ChannelInfo), nil
}

// stateItems is a C array of the map's items; free it with the returned func.
func stateItems(data map[string]string) (*C.rtm2_state_item, int, func()) {
	if len(data) == 0 {
		return nil, 0, func() {}
	}
	arr := (*C.rtm2_state_item)(C.malloc(C.size_t(len(data)) * C.size_t(unsafe.Sizeof(C.rtm2_state_item{}))))
	view := unsafe.Slice(arr, len(data))
	i := 0
	for k, v := range data {
		view[i].key, view[i].value = cstr(k), cstr(v)
		i++
	}
	return arr, len(data), func() {
		for _, it := range view {
			free(it.key)
			free(it.value)
		}
		C.free(unsafe.Pointer(arr))
	}
}

func (p *presence) SetState(channel string, channelType ChannelType, data map[string]string) error {
	items, n, done := stateItems(data)
	defer done()
	ch := cstr(channel)
	defer free(ch)
	_, err := (*client)(p).op("SetState", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_presence_set_state(h, ch, C.uint32_t(channelType), items, C.size_t(n), cb, tok, nil)
	}, nil)
	return err
}

func (p *presence) RemoveState(channel string, channelType ChannelType, keys []string) error {
	ks, done := cstrs(keys)
	defer done()
	ch := cstr(channel)
	defer free(ch)
	_, err := (*client)(p).op("RemoveState", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_presence_remove_state(h, ch, C.uint32_t(channelType), ks, C.size_t(len(keys)), cb, tok, nil)
	}, nil)
	return err
}

func (p *presence) GetState(channel string, channelType ChannelType, userId string) (map[string]string, error) {
	ch, u := cstr(channel), cstr(userId)
	defer free(ch)
	defer free(u)
	v, err := (*client)(p).op("GetState", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_presence_get_state(h, ch, C.uint32_t(channelType), u, cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		if r.user_state == nil {
			return map[string]string{}
		}
		return states(r.user_state.states, r.user_state.state_count)
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]string), nil
}

// ---- storage ----

func (s *storage) GetChannelMetadataChan(channel string, channelType ChannelType) (map[string]*MetadataItem, <-chan *StorageEvent, error) {
	c := (*client)(s)
	c.mu.Lock()
	f := c.chMeta[chKey{channel, channelType}]
	c.mu.Unlock()
	return awaitFeed(c, f, ERROR_STORAGE_NOT_SUBSCRIBE, ERROR_STORAGE_OPERATION_TIMEOUT)
}

// metadataArgs is a C array of the items and the C options; free them with the returned func.
func metadataArgs(data map[string]*MetadataItem, opts []StorageOption) (*C.rtm2_metadata_item, int, *C.rtm2_metadata_options, func()) {
	o := &StorageOptions{MajorRev: -1}
	for _, f := range opts {
		f(o)
	}
	mo := (*C.rtm2_metadata_options)(C.malloc(C.size_t(unsafe.Sizeof(C.rtm2_metadata_options{}))))
	C.rtm2_metadata_options_init(mo)
	mo.major_revision = C.int64_t(o.MajorRev)
	mo.record_ts = C.bool(o.RecordTs)
	mo.record_author = C.bool(o.RecordAuthor)
	mo.fencing_token = C.uint64_t(o.FencingToken)
	if o.Lock != "" {
		mo.lock_name = cstr(o.Lock)
	}
	var arr *C.rtm2_metadata_item
	var view []C.rtm2_metadata_item
	if len(data) > 0 {
		arr = (*C.rtm2_metadata_item)(C.malloc(C.size_t(len(data)) * C.size_t(unsafe.Sizeof(C.rtm2_metadata_item{}))))
		view = unsafe.Slice(arr, len(data))
		i := 0
		for k, it := range data {
			key, value, rev := k, "", int64(-1)
			if it != nil {
				if it.Key != "" {
					key = it.Key
				}
				value, rev = it.Value, it.Revision
				switch rev {
				case 0:
					rev = -1 // Go's zero value: unconditional
				case RevisionAbsent:
					rev = 0 // the C API's "must not exist yet"
				}
			}
			view[i] = C.rtm2_metadata_item{key: cstr(key), value: cstr(value), revision: C.int64_t(rev)}
			i++
		}
	}
	return arr, len(data), mo, func() {
		for _, it := range view {
			free(it.key)
			free(it.value)
		}
		if arr != nil {
			C.free(unsafe.Pointer(arr))
		}
		free(mo.lock_name)
		C.free(unsafe.Pointer(mo))
	}
}

type metaWrite func(h *C.rtm2_client, items *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options,
	cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t

func (s *storage) write(name string, data map[string]*MetadataItem, opts []StorageOption, w metaWrite) error {
	items, n, mo, done := metadataArgs(data, opts)
	defer done()
	_, err := (*client)(s).op(name, func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return w(h, items, C.size_t(n), mo, cb, tok)
	}, nil)
	return err
}

func (s *storage) channelWrite(name, channel string, t ChannelType, data map[string]*MetadataItem, opts []StorageOption,
	f func(*C.rtm2_client, *C.char, C.uint32_t, *C.rtm2_metadata_item, C.size_t, *C.rtm2_metadata_options, C.rtm2_completion_cb, unsafe.Pointer) C.int32_t) error {
	ch := cstr(channel)
	defer free(ch)
	return s.write(name, data, opts, func(h *C.rtm2_client, items *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options,
		cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return f(h, ch, C.uint32_t(t), items, n, mo, cb, tok)
	})
}

func (s *storage) SetChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.channelWrite("SetChannelMetadata", channel, channelType, data, opts,
		func(h *C.rtm2_client, ch *C.char, t C.uint32_t, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_set_channel_metadata(h, ch, t, it, n, mo, cb, tok, nil)
		})
}

func (s *storage) UpdateChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.channelWrite("UpdateChannelMetadata", channel, channelType, data, opts,
		func(h *C.rtm2_client, ch *C.char, t C.uint32_t, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_update_channel_metadata(h, ch, t, it, n, mo, cb, tok, nil)
		})
}

func (s *storage) RemoveChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.channelWrite("RemoveChannelMetadata", channel, channelType, data, opts,
		func(h *C.rtm2_client, ch *C.char, t C.uint32_t, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_remove_channel_metadata(h, ch, t, it, n, mo, cb, tok, nil)
		})
}

func decodeMetadata(r *C.rtm2_result) any {
	major, items := metadataItems(r.metadata)
	return metadataResult{major, items}
}

type metadataResult struct {
	major int64
	items map[string]*MetadataItem
}

func (s *storage) GetChannelMetadata(channel string, channelType ChannelType) (int64, map[string]*MetadataItem, error) {
	ch := cstr(channel)
	defer free(ch)
	v, err := (*client)(s).op("GetChannelMetadata", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_storage_get_channel_metadata(h, ch, C.uint32_t(channelType), cb, tok, nil)
	}, decodeMetadata)
	if err != nil {
		return 0, nil, err
	}
	m := v.(metadataResult)
	return m.major, m.items, nil
}

func (s *storage) userWrite(name, userId string, data map[string]*MetadataItem, opts []StorageOption,
	f func(*C.rtm2_client, *C.char, *C.rtm2_metadata_item, C.size_t, *C.rtm2_metadata_options, C.rtm2_completion_cb, unsafe.Pointer) C.int32_t) error {
	u := cstr(userId)
	defer free(u)
	return s.write(name, data, opts, func(h *C.rtm2_client, items *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options,
		cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return f(h, u, items, n, mo, cb, tok)
	})
}

func (s *storage) SetUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.userWrite("SetUserMetadata", userId, data, opts,
		func(h *C.rtm2_client, u *C.char, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_set_user_metadata(h, u, it, n, mo, cb, tok, nil)
		})
}

func (s *storage) UpdateUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.userWrite("UpdateUserMetadata", userId, data, opts,
		func(h *C.rtm2_client, u *C.char, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_update_user_metadata(h, u, it, n, mo, cb, tok, nil)
		})
}

func (s *storage) RemoveUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error {
	return s.userWrite("RemoveUserMetadata", userId, data, opts,
		func(h *C.rtm2_client, u *C.char, it *C.rtm2_metadata_item, n C.size_t, mo *C.rtm2_metadata_options, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_storage_remove_user_metadata(h, u, it, n, mo, cb, tok, nil)
		})
}

func (s *storage) GetUserMetadata(userId string) (int64, map[string]*MetadataItem, error) {
	u := cstr(userId)
	defer free(u)
	v, err := (*client)(s).op("GetUserMetadata", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_storage_get_user_metadata(h, u, cb, tok, nil)
	}, decodeMetadata)
	if err != nil {
		return 0, nil, err
	}
	m := v.(metadataResult)
	return m.major, m.items, nil
}

// SubscribeUserMetadata subscribes and returns the user's metadata (the first snapshot) and
// its later changes.
func (s *storage) SubscribeUserMetadata(userId string) (map[string]*MetadataItem, <-chan *StorageEvent, error) {
	c := (*client)(s)
	c.mu.Lock()
	f, had := c.userMeta[userId]
	if !had {
		f = newFeed[*StorageEvent, map[string]*MetadataItem](c, "metadata events of user "+userId)
		c.userMeta[userId] = f
	}
	c.mu.Unlock()
	u := cstr(userId)
	defer free(u)
	_, err := c.op("SubscribeUserMetadata", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_storage_subscribe_user_metadata(h, u, cb, tok, nil)
	}, nil)
	if err != nil {
		if !had {
			c.mu.Lock()
			delete(c.userMeta, userId)
			f.ch.close()
			c.mu.Unlock()
		}
		return nil, nil, err
	}
	return awaitFeed(c, f, ERROR_STORAGE_NOT_SUBSCRIBE, ERROR_STORAGE_OPERATION_TIMEOUT)
}

func (s *storage) UnsubscribeUserMetadata(userId string) error {
	c := (*client)(s)
	u := cstr(userId)
	defer free(u)
	_, err := c.op("UnsubscribeUserMetadata", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_storage_unsubscribe_user_metadata(h, u, cb, tok, nil)
	}, nil)
	if err == nil {
		c.mu.Lock()
		if f := c.userMeta[userId]; f != nil {
			f.ch.close()
			delete(c.userMeta, userId)
		}
		c.mu.Unlock()
	}
	return err
}

// ---- locks ----

func (l *locks) GetLockChan(channel string, channelType ChannelType) (map[string]*LockDetail, <-chan *LockEvent, error) {
	c := (*client)(l)
	c.mu.Lock()
	f := c.locks[chKey{channel, channelType}]
	c.mu.Unlock()
	return awaitFeed(c, f, notThere(channelType), ERROR_LOCK_OPERATION_TIMEOUT)
}

func (l *locks) lockOp(name, channel string, t ChannelType, lock string,
	f func(h *C.rtm2_client, ch, lk *C.char, t C.uint32_t, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t,
	decode func(*C.rtm2_result) any) (any, error) {
	ch, lk := cstr(channel), cstr(lock)
	defer free(ch)
	defer free(lk)
	return (*client)(l).op(name, func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return f(h, ch, lk, C.uint32_t(t), cb, tok)
	}, decode)
}

func (l *locks) Set(channel string, channelType ChannelType, name string, ttl uint32) error {
	_, err := l.lockOp("Set", channel, channelType, name,
		func(h *C.rtm2_client, ch, lk *C.char, t C.uint32_t, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_lock_set(h, ch, t, lk, C.uint32_t(ttl), cb, tok, nil)
		}, nil)
	return err
}

func (l *locks) Get(channel string, channelType ChannelType) (map[string]*LockDetail, error) {
	ch := cstr(channel)
	defer free(ch)
	v, err := (*client)(l).op("Get", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_lock_get_locks(h, ch, C.uint32_t(channelType), cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		out := map[string]*LockDetail{}
		if r.locks != nil {
			for _, d := range lockDetails(r.locks.locks, r.locks.count) {
				out[d.Name] = d
			}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]*LockDetail), nil
}

func (l *locks) Remove(channel string, channelType ChannelType, name string) error {
	_, err := l.lockOp("Remove", channel, channelType, name,
		func(h *C.rtm2_client, ch, lk *C.char, t C.uint32_t, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_lock_remove(h, ch, t, lk, cb, tok, nil)
		}, nil)
	return err
}

// Acquire starts the acquisition at once (in call order with the client's other requests)
// and returns a channel that receives its outcome: nil once the lock is this client's.
func (l *locks) Acquire(channel string, channelType ChannelType, name string, retry bool) <-chan error {
	out := make(chan error, 1)
	c := (*client)(l)
	h, err := c.handle()
	if err != nil {
		out <- err
		return out
	}
	ch, lk := cstr(channel), cstr(name)
	wait := begin(func(tok unsafe.Pointer) C.int32_t {
		return C.rtm2_lock_acquire(h, ch, C.uint32_t(channelType), lk, C.bool(retry), completeCb(), tok, nil)
	}, nil)
	c.release()
	free(ch)
	free(lk)
	go func() {
		o := <-wait
		if o.status != 0 {
			out <- c.fail("Acquire", o.status, o.reason)
			return
		}
		out <- nil
	}()
	return out
}

func (l *locks) Release(channel string, channelType ChannelType, name string) error {
	_, err := l.lockOp("Release", channel, channelType, name,
		func(h *C.rtm2_client, ch, lk *C.char, t C.uint32_t, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_lock_release(h, ch, t, lk, cb, tok, nil)
		}, nil)
	return err
}

func (l *locks) Revoke(channel string, channelType ChannelType, name string, owner string) error {
	o := cstr(owner)
	defer free(o)
	_, err := l.lockOp("Revoke", channel, channelType, name,
		func(h *C.rtm2_client, ch, lk *C.char, t C.uint32_t, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
			return C.rtm2_lock_revoke(h, ch, t, lk, o, cb, tok, nil)
		}, nil)
	return err
}
