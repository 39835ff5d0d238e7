package rtm2

/*
#include <stdlib.h>
#include "rtm2.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// DefaultEventBuffer is how many events may wait for the reader of each Go channel the package
// returns (RTMConfig.EventBuffer changes it). When that many wait (the reader is behind), new
// events for that channel are dropped — the SDK never waits for Go code — and the drop is
// counted (DroppedEvents) and logged. Memory grows only with what actually waits.
const DefaultEventBuffer = 65536

// A (channel, channel type) pair: the key of presence, storage and lock event channels.
type chKey struct {
	name string
	typ  ChannelType
}

// feed is a Go channel of events with the first snapshot kept aside (Get…Chan waits for it).
type feed[E any, S any] struct {
	ch    *outbox[E]
	snap  S
	ready chan struct{} // closed when the first snapshot arrived
	got   bool
}

func newFeed[E any, S any](c *client, what string) *feed[E, S] {
	return &feed[E, S]{ch: newOutbox[E](c, what), ready: make(chan struct{})}
}

var (
	clients      sync.Map // listener id -> *client
	nextClientID atomic.Uint64
)

// client implements RTMClient over one rtm2 C client.
type client struct {
	id      uintptr
	userID  string
	log     *zap.Logger
	errChan chan<- error
	timeout time.Duration // how long Get…Chan waits for a first snapshot
	// Events that may wait for each Go channel's reader; the outboxes' goroutines.
	eventBuffer int
	pumps       sync.WaitGroup

	// life guards the C handles: operations start under the read lock; close takes the write
	// lock, so no call runs on a freed handle.
	life     sync.RWMutex
	h        *C.rtm2_client
	conf     *C.rtm2_config // kept: the endpoint may change until the first operation
	endpoint string
	used     atomic.Bool // an operation ran: the endpoint is fixed
	closed   bool
	cfgErr   error // a configuration that could not be used: every call fails with it
	stopCtx  func() bool

	// Event routing, under mu.
	mu       sync.Mutex
	connCh   *outbox[*ConnectionEvent]
	tokenCh  *outbox[string]
	p2pCh    *outbox[*Message]
	subs     map[string]*outbox[*Message]
	streams  map[string]*streamChannel
	presence map[chKey]*feed[*PresenceEvent, map[string]*UserState]
	chMeta   map[chKey]*feed[*StorageEvent, map[string]*MetadataItem]
	userMeta map[string]*feed[*StorageEvent, map[string]*MetadataItem]
	locks    map[chKey]*feed[*LockEvent, map[string]*LockDetail]

	dropped atomic.Uint64
	// The last message's publisher (see publisherName); the dispatcher thread's alone.
	lastPublisher string
}

// CreateRTM2Client makes a client. Cancelling ctx logs the client out and frees it; errChan
// (may be nil) receives an error when the client fails for good (the connection state
// FAILED: token expired, the same user id logged in elsewhere, …): recreate the client then.
// A configuration error (bad app id, user id or endpoint) is sent to errChan too, and every
// call of the returned client then fails with it.
func CreateRTM2Client(ctx context.Context, config RTMConfig, errChan chan<- error) RTMClient {
	log := config.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := &client{
		id:       uintptr(nextClientID.Add(1)),
		userID:   config.UserId,
		log:      log,
		errChan:  errChan,
		timeout:  10 * time.Second,
		endpoint: config.Endpoint,
		subs:     map[string]*outbox[*Message]{},
		streams:  map[string]*streamChannel{},
		presence: map[chKey]*feed[*PresenceEvent, map[string]*UserState]{},
		chMeta:   map[chKey]*feed[*StorageEvent, map[string]*MetadataItem]{},
		userMeta: map[string]*feed[*StorageEvent, map[string]*MetadataItem]{},
		locks:    map[chKey]*feed[*LockEvent, map[string]*LockDetail]{},
	}
	if config.RequestTimeout > 0 {
		c.timeout = time.Duration(config.RequestTimeout) * time.Millisecond
	}
	c.eventBuffer = config.EventBuffer
	if c.eventBuffer <= 0 {
		c.eventBuffer = DefaultEventBuffer
	}
	c.connCh = newOutbox[*ConnectionEvent](c, "connection events")
	c.tokenCh = newOutbox[string](c, "token events")
	c.p2pCh = newOutbox[*Message](c, "peer-to-peer messages")
	if err := c.configure(config); err != nil {
		c.cfgErr = err
		c.report(err)
		if c.conf != nil {
			C.rtm2_config_free(c.conf)
			c.conf = nil
		}
		return c
	}
	c.stopCtx = context.AfterFunc(ctx, c.close)
	return c
}

func (c *client) configure(config RTMConfig) error {
	appID, userID := cstr(config.Appid), cstr(config.UserId)
	defer free(appID)
	defer free(userID)
	var conf *C.rtm2_config
	if st, why := syncCall(func() C.int32_t { return C.rtm2_config_new(appID, userID, &conf) }); st != 0 {
		return c.fail("create client", st, why)
	}
	c.conf = conf
	set := func(what string, call func() C.int32_t) error {
		if st, why := syncCall(call); st != 0 {
			return c.fail(what, st, why)
		}
		return nil
	}
	if config.RequestTimeout > 0 {
		if err := set("RequestTimeout", func() C.int32_t {
			return C.rtm2_config_set_request_timeout_ms(conf, C.uint64_t(config.RequestTimeout))
		}); err != nil {
			return err
		}
	}
	if config.PresenceTimeout > 0 {
		if err := set("PresenceTimeout", func() C.int32_t {
			return C.rtm2_config_set_presence_timeout_s(conf, C.uint32_t(config.PresenceTimeout))
		}); err != nil {
			return err
		}
	}
	if config.FilePath != "" {
		p := cstr(config.FilePath)
		defer free(p)
		if err := set("FilePath", func() C.int32_t { return C.rtm2_config_set_log_file(conf, p) }); err != nil {
			return err
		}
	}
	if err := c.setEndpoint(config.Endpoint); err != nil {
		return err
	}
	if err := c.setEncryption(config.Encryption); err != nil {
		return err
	}
	return c.makeHandle()
}

// setEndpoint checks and sets the endpoint on the (not yet used) configuration.
// "" is the core's default: the RTM2_ENDPOINT environment variable if it is set, else the
// embedded server.
func (c *client) setEndpoint(endpoint string) error {
	e := cstr(endpoint)
	defer free(e)
	if st, why := syncCall(func() C.int32_t { return C.rtm2_config_set_endpoint(c.conf, e) }); st != 0 {
		return c.fail("endpoint", st, why)
	}
	c.endpoint = endpoint
	return nil
}

// setEncryption applies RTMConfig.Encryption when any of it is set (the zero value is the
// core's default: none), with the C setter's checks.
func (c *client) setEncryption(e EncryptionConfig) error {
	if e.Mode == EncryptionModeNone && e.Key == "" && len(e.Salt) == 0 {
		return nil
	}
	if strings.IndexByte(e.Key, 0) >= 0 {
		// C would see the key cut at the NUL: a weaker key than the one given.
		return c.fail("Encryption", int32(C.RTM2_ERR_INVALID_ENCRYPTION_PARAMETER), "the cipher key contains a NUL byte")
	}
	if e.Mode < 0 || int64(e.Mode) > int64(^uint32(0)) {
		return c.fail("Encryption", int32(C.RTM2_ERR_INVALID_ENCRYPTION_PARAMETER), fmt.Sprintf("encryption mode %d", e.Mode))
	}
	key := cstr(e.Key)
	defer free(key)
	var salt *C.uint8_t
	if len(e.Salt) > 0 {
		// A byte slice holds no Go pointers: C may read it for the call.
		salt = (*C.uint8_t)(unsafe.Pointer(&e.Salt[0]))
	}
	if st, why := syncCall(func() C.int32_t {
		return C.rtm2_config_set_encryption(c.conf, C.uint32_t(e.Mode), key, salt, C.size_t(len(e.Salt)))
	}); st != 0 {
		return c.fail("Encryption", st, why)
	}
	return nil
}

// fail turns a status into the package's error, logging the reason.
func (c *client) fail(op string, status int32, reason string) error {
	err := ErrorFromCode(status)
	c.log.Debug("rtm2: "+op+" failed", zap.Int32("code", status), zap.String("reason", reason))
	return err
}

func (c *client) report(err error) {
	if c.errChan == nil {
		return
	}
	select {
	case c.errChan <- err:
	default:
		c.log.Warn("rtm2: errChan is full; an error was not delivered", zap.Error(err))
	}
}

// handle returns the C client with the read lock held (call release); from now on the
// endpoint is fixed.
func (c *client) handle() (*C.rtm2_client, error) {
	c.life.RLock()
	if c.h == nil {
		err := c.cfgErr
		c.life.RUnlock()
		if err == nil {
			err = ERROR_INSTANCE_ALREADY_RELEASED
		}
		return nil, err
	}
	c.used.Store(true)
	return c.h, nil
}

func (c *client) release() { c.life.RUnlock() }

// makeHandle creates the C client from the configuration (under the write lock, or before
// the client is shared).
func (c *client) makeHandle() error {
	var l C.rtm2_listener
	fillListener(&l, c.id)
	clients.Store(c.id, c)
	var h *C.rtm2_client
	if st, why := syncCall(func() C.int32_t { return C.rtm2_client_new(c.conf, &l, &h) }); st != 0 {
		clients.Delete(c.id)
		return c.fail("create client", st, why)
	}
	c.h = h
	return nil
}

// op runs one asynchronous operation of the client and waits for its outcome.
func (c *client) op(name string, start func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t,
	decode func(*C.rtm2_result) any) (any, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	wait := begin(func(tok unsafe.Pointer) C.int32_t { return start(h, completeCb(), tok) }, decode)
	c.release()
	o := <-wait
	if o.status != 0 {
		return nil, c.fail(name, o.status, o.reason)
	}
	return o.value, nil
}

// close logs out (best effort) and frees the client; later calls fail with 10018.
func (c *client) close() {
	c.life.Lock()
	if c.closed {
		c.life.Unlock()
		return
	}
	h := c.h
	c.life.Unlock()
	if h != nil {
		_ = c.Logout()
	}
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.stopCtx != nil {
		c.stopCtx()
	}
	if c.h != nil {
		C.rtm2_client_free(c.h)
		c.h = nil
	}
	if c.conf != nil {
		C.rtm2_config_free(c.conf)
		c.conf = nil
	}
	c.mu.Lock()
	c.forgetChannels()
	for _, s := range c.streams {
		s.free()
		s.events.close()
		s.tokens.close()
	}
	c.connCh.close()
	c.tokenCh.close()
	c.p2pCh.close()
	c.mu.Unlock()
}

func (c *client) Login(token string) (<-chan *ConnectionEvent, <-chan string, <-chan *Message, error) {
	t := cstr(token)
	defer free(t)
	_, err := c.op("Login", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_login(h, t, cb, tok, nil)
	}, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return c.connCh.ch, c.tokenCh.ch, c.p2pCh.ch, nil
}

func (c *client) Logout() error {
	_, err := c.op("Logout", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_logout(h, cb, tok, nil)
	}, nil)
	if err == nil {
		c.mu.Lock()
		c.forgetChannels()
		c.mu.Unlock()
	}
	return err
}

func (c *client) RenewToken(token string) error {
	t := cstr(token)
	defer free(t)
	_, err := c.op("RenewToken", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_renew_token(h, t, cb, tok, nil)
	}, nil)
	return err
}

// SetParameters sets rtm2 parameters (the keys of docs/go.md, e.g. "request_timeout_ms",
// "heartbeat_interval_s"), all or nothing, and "endpoint" before the first operation (Login).
func (c *client) SetParameters(params map[string]interface{}) error {
	rest := map[string]interface{}{}
	var endpoint *string
	for k, v := range params {
		if k == "endpoint" {
			s, ok := v.(string)
			if !ok {
				return c.fail("SetParameters", 10014, "endpoint must be a string")
			}
			endpoint = &s
			continue
		}
		rest[k] = v
	}
	c.life.Lock()
	defer c.life.Unlock()
	if c.h == nil {
		if c.cfgErr != nil {
			return c.cfgErr
		}
		return ERROR_INSTANCE_ALREADY_RELEASED
	}
	var js *C.char
	if len(rest) > 0 {
		b, err := json.Marshal(rest)
		if err != nil {
			return c.fail("SetParameters", 10014, err.Error())
		}
		js = cstr(string(b))
		defer free(js)
		// Checked (all or nothing) and kept in the configuration, for a client made anew.
		if st, why := syncCall(func() C.int32_t { return C.rtm2_config_set_parameters(c.conf, js) }); st != 0 {
			return c.fail("SetParameters", st, why)
		}
	}
	if endpoint != nil && *endpoint != c.endpoint {
		if c.used.Load() {
			return c.fail("SetParameters", 10014, "the endpoint can only be set before the first operation (Login)")
		}
		if err := c.setEndpoint(*endpoint); err != nil {
			return err
		}
		// Nothing ran on the client yet: make it anew with the endpoint.
		C.rtm2_client_free(c.h)
		c.h = nil
		if err := c.makeHandle(); err != nil {
			c.cfgErr = err
			return err
		}
		return nil
	}
	if js != nil {
		if st, why := syncCall(func() C.int32_t { return C.rtm2_client_set_parameters(c.h, js) }); st != 0 {
			return c.fail("SetParameters", st, why)
		}
	}
	return nil
}

// GetParameters returns the parameters in effect, with "endpoint" (nil once the client is freed).
func (c *client) GetParameters() map[string]interface{} {
	// (Not c.handle(): reading the parameters does not fix the endpoint.)
	c.life.RLock()
	if c.h == nil {
		c.life.RUnlock()
		return nil
	}
	var out *C.char
	st := C.rtm2_client_get_parameters(c.h, &out)
	c.life.RUnlock()
	if st != 0 {
		return nil
	}
	defer C.rtm2_string_free(out)
	m := map[string]interface{}{}
	if json.Unmarshal([]byte(C.GoString(out)), &m) != nil {
		return nil
	}
	m["endpoint"] = c.endpoint
	return m
}

func (c *client) Storage() Storage   { return (*storage)(c) }
func (c *client) Lock() Lock         { return (*locks)(c) }
func (c *client) Presence() Presence { return (*presence)(c) }

func (c *client) Publish(channel string, message []byte, opts ...MessageOption) error {
	o := DefaultMessageOptions()
	for _, f := range opts {
		f(o)
	}
	var po C.rtm2_publish_options
	C.rtm2_publish_options_init(&po)
	po.channel_type = C.uint32_t(o.ChannelType)
	po.message_type = C.uint32_t(o.Type)
	po.store_in_history = C.bool(o.StoreInHistory)
	var ct *C.char
	if o.CustomType != "" {
		ct = cstr(o.CustomType)
		defer free(ct)
		po.custom_type = ct
	}
	ch := cstr(channel)
	defer free(ch)
	var payload unsafe.Pointer
	if len(message) > 0 {
		payload = C.CBytes(message)
		defer C.free(payload)
	}
	_, err := c.op("Publish", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_publish(h, ch, payload, C.size_t(len(message)), &po, cb, tok, nil)
	}, nil)
	return err
}

func subscribeFlags(o *MessageOptions) C.uint32_t {
	var f C.uint32_t
	if o.Message {
		f |= C.RTM2_SUBSCRIBE_WITH_MESSAGE
	}
	if o.Presence {
		f |= C.RTM2_SUBSCRIBE_WITH_PRESENCE
	}
	if o.Metadata {
		f |= C.RTM2_SUBSCRIBE_WITH_METADATA
	}
	if o.Lock {
		f |= C.RTM2_SUBSCRIBE_WITH_LOCK
	}
	if o.BeQuiet {
		f |= C.RTM2_SUBSCRIBE_BE_QUIET
	}
	return f
}

// Subscribe subscribes with DefaultMessageOptions (messages and presence) changed by opts.
func (c *client) Subscribe(channel string, opts ...MessageOption) (chan *Message, error) {
	o := DefaultMessageOptions()
	for _, f := range opts {
		f(o)
	}
	key := chKey{channel, ChannelTypeMessage}
	// The Go channels exist before the request: events may come before its answer.
	c.mu.Lock()
	msgs, had := c.subs[channel]
	if !had {
		msgs = newOutbox[*Message](c, "messages of "+channel)
		c.subs[channel] = msgs
	}
	undo := c.openFeeds(key, o.Presence, o.Metadata, o.Lock)
	c.mu.Unlock()
	ch := cstr(channel)
	defer free(ch)
	_, err := c.op("Subscribe", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_subscribe(h, ch, subscribeFlags(o), cb, tok, nil)
	}, nil)
	if err != nil {
		c.mu.Lock()
		if !had {
			delete(c.subs, channel)
			msgs.close()
		}
		undo()
		c.mu.Unlock()
		return nil, err
	}
	return msgs.ch, nil
}

// openFeeds makes the presence / metadata / lock feeds of a channel that do not exist yet;
// the returned func removes those it made (under mu).
func (c *client) openFeeds(key chKey, presence, metadata, lock bool) func() {
	var made []func()
	if presence && c.presence[key] == nil {
		f := newFeed[*PresenceEvent, map[string]*UserState](c, "presence events of "+key.name)
		c.presence[key] = f
		made = append(made, func() { delete(c.presence, key); f.ch.close() })
	}
	if metadata && c.chMeta[key] == nil {
		f := newFeed[*StorageEvent, map[string]*MetadataItem](c, "metadata events of "+key.name)
		c.chMeta[key] = f
		made = append(made, func() { delete(c.chMeta, key); f.ch.close() })
	}
	if lock && c.locks[key] == nil {
		f := newFeed[*LockEvent, map[string]*LockDetail](c, "lock events of "+key.name)
		c.locks[key] = f
		made = append(made, func() { delete(c.locks, key); f.ch.close() })
	}
	return func() {
		for _, f := range made {
			f()
		}
	}
}

// closeFeeds forgets a channel's feeds (under mu).
func (c *client) closeFeeds(key chKey) {
	if f := c.presence[key]; f != nil {
		f.ch.close()
		delete(c.presence, key)
	}
	if f := c.chMeta[key]; f != nil {
		f.ch.close()
		delete(c.chMeta, key)
	}
	if f := c.locks[key]; f != nil {
		f.ch.close()
		delete(c.locks, key)
	}
}

// forgetChannels forgets every subscription's, topic's and feed's Go channel (the session
// ended: Logout, or the client is freed), under mu.
func (c *client) forgetChannels() {
	for _, o := range c.subs {
		o.close()
	}
	c.subs = map[string]*outbox[*Message]{}
	for _, f := range c.presence {
		f.ch.close()
	}
	c.presence = map[chKey]*feed[*PresenceEvent, map[string]*UserState]{}
	for _, f := range c.chMeta {
		f.ch.close()
	}
	c.chMeta = map[chKey]*feed[*StorageEvent, map[string]*MetadataItem]{}
	for _, f := range c.userMeta {
		f.ch.close()
	}
	c.userMeta = map[string]*feed[*StorageEvent, map[string]*MetadataItem]{}
	for _, f := range c.locks {
		f.ch.close()
	}
	c.locks = map[chKey]*feed[*LockEvent, map[string]*LockDetail]{}
	for _, s := range c.streams {
		s.forgetTopics()
	}
}

func (c *client) Unsubscribe(channel string) error {
	ch := cstr(channel)
	defer free(ch)
	_, err := c.op("Unsubscribe", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_client_unsubscribe(h, ch, cb, tok, nil)
	}, nil)
	if err == nil {
		c.mu.Lock()
		if o := c.subs[channel]; o != nil {
			o.close()
			delete(c.subs, channel)
		}
		c.closeFeeds(chKey{channel, ChannelTypeMessage})
		c.mu.Unlock()
	}
	return err
}

func (c *client) StreamChannel(channel string) StreamChannel {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[channel]; s != nil {
		return s
	}
	s := &streamChannel{c: c, name: channel, topicMsgs: map[string]*outbox[*Message]{},
		events: newOutbox[*TopicEvent](c, "topic events of "+channel), tokens: newOutbox[string](c, "token events of "+channel)}
	c.streams[channel] = s
	return s
}

// DroppedEvents is how many events were dropped because a Go channel of this client was full
// (rtm2 addition; see EventBuffer).
func DroppedEvents(rtm RTMClient) uint64 {
	if c, ok := rtm.(*client); ok {
		return c.dropped.Load()
	}
	return 0
}

// String describes the client (user id and endpoint).
func (c *client) String() string {
	return fmt.Sprintf("rtm2 client %q at %s", c.userID, strings.TrimSpace(c.endpoint))
}
