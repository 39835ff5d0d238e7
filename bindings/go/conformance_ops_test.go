package rtm2

// The scenario operations, mapped onto the Go interface (RTMClient, StreamChannel, Presence,
// Storage, Lock). See the top of conformance_test.go for what the Go interface cannot express.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
)

// cfRunnerError is a step the runner could not run or whose result differed: never an RTM
// outcome.
type cfRunnerError struct{ msg string }

func (e *cfRunnerError) Error() string { return e.msg }

func cfErrorf(format string, args ...any) error { return &cfRunnerError{fmt.Sprintf(format, args...)} }

var cfChannelTypes = map[string]ChannelType{"MESSAGE": ChannelTypeMessage, "STREAM": ChannelTypeStream, "USER": ChannelTypeUser}

func cfChannelType(o map[string]string) (ChannelType, error) {
	v, ok := o["channel_type"]
	if !ok {
		return ChannelTypeMessage, nil
	}
	t, ok := cfChannelTypes[v]
	if !ok {
		return 0, cfErrorf("unknown channel_type %q", v)
	}
	return t, nil
}

var cfShortRe = regexp.MustCompile(`^short:(\d+)$`)

// token builds a token of kind (tests/conformance/README.md) for user; stream is the stream
// channel for a stream-channel token ("" for a login token).
func (r *cfRunner) token(kind, user, stream string) (string, error) {
	if kind == "" {
		kind = "auto"
	}
	build := func(u string, secs uint32) (string, error) {
		if stream != "" {
			return BuildStreamToken(appID, cert, stream, u, secs)
		}
		return BuildToken(appID, cert, u, secs)
	}
	switch {
	case kind == "auto" && r.cert:
		return build(user, 3600)
	case kind == "auto" || kind == "none":
		return "", nil
	case kind == "bad":
		return "007garbage", nil
	case kind == "expired":
		return build(user, 0)
	case kind == "other":
		return build("someone-else", 3600)
	}
	if m := cfShortRe.FindStringSubmatch(kind); m != nil {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		return build(user, uint32(n))
	}
	return "", cfErrorf("unknown token kind %q", kind)
}

// inexpressible says why the Go interface cannot express step s ("" if it can).
func cfInexpressible(s *cfStep) string {
	switch s.op {
	case "set_state":
		if ps, err := cfGenerated(s.opts, "states"); err == nil && cfDuplicateKey(ps) != "" {
			return "a key given twice: SetState takes a map[string]string, which cannot hold a key twice"
		}
	case "set_channel_metadata", "update_channel_metadata", "set_user_metadata", "update_user_metadata":
		if ps, err := cfGenerated(s.opts, "items"); err == nil && cfDuplicateKey(ps) != "" {
			return "a key given twice: the Go metadata writes take a map[string]*MetadataItem, which cannot hold a key twice"
		}
	}
	return ""
}

func (a *cfActor) arg(s *cfStep, i int) (string, error) {
	if i >= len(s.args) {
		return "", cfErrorf("missing argument %d", i+1)
	}
	return s.args[i], nil
}

// op runs one operation of actor a; an RTM outcome comes back as the package's RTMError,
// anything else as a *cfRunnerError.
func (r *cfRunner) op(a *cfActor, s *cfStep) error {
	o := s.opts
	arg := func(i int) string { v, _ := a.arg(s, i); return v }
	if n := cfArgCount[s.op]; len(s.args) < n {
		return cfErrorf("%s takes %d argument(s), got %d", s.op, n, len(s.args))
	}
	c := a.c
	switch s.op {
	case "login":
		tok, err := r.token(o["token"], a.user, "")
		if err != nil {
			return err
		}
		conn, tokens, p2p, err := c.Login(tok)
		if err != nil {
			return err
		}
		cfForward(r, a, conn, cfConnEvent)
		cfForward(r, a, tokens, cfTokenEvent)
		user := a.user
		cfForward(r, a, p2p, func(m *Message) *cfEvent { return cfMessageEvent(ChannelTypeUser, user, "", m) })
		return nil
	case "logout":
		err := c.Logout()
		if err == nil {
			a.forgetFeeds(func(string) bool { return true })
		}
		return err
	case "renew_token":
		if ch, ok := o["channel"]; ok {
			tok, err := r.token(o["token"], a.user, ch)
			if err != nil {
				return err
			}
			return c.StreamChannel(ch).RenewToken(tok)
		}
		tok, err := r.token(o["token"], a.user, "")
		if err != nil {
			return err
		}
		return c.RenewToken(tok)
	case "set_parameters":
		params := map[string]interface{}{}
		if err := json.Unmarshal([]byte(arg(0)), &params); err != nil {
			return cfErrorf("set_parameters: not a JSON object: %v", err)
		}
		return c.SetParameters(params)
	case "subscribe":
		return r.subscribe(a, s)
	case "unsubscribe":
		err := c.Unsubscribe(arg(0))
		if err == nil {
			a.forgetFeeds(func(k string) bool { return k == cfFeedKey("", chKey{arg(0), ChannelTypeMessage}) })
		}
		return err
	case "publish", "publish_binary", "publish_size":
		var payload []byte
		opts := []MessageOption{WithMessageType(MessageTypeString)}
		switch s.op {
		case "publish":
			payload = []byte(arg(1))
		case "publish_binary":
			b, err := hex.DecodeString(arg(1))
			if err != nil {
				return cfErrorf("bad hex %q", arg(1))
			}
			payload, opts = b, []MessageOption{WithMessageType(MessageTypeBinary)}
		default:
			n, err := strconv.Atoi(arg(1))
			if err != nil {
				return cfErrorf("publish_size: bad size %q", arg(1))
			}
			payload = make([]byte, n)
			for i := range payload {
				payload[i] = 'x'
			}
		}
		if ct, ok := o["custom_type"]; ok {
			opts = append(opts, WithMessageCustomType(ct))
		}
		if v, ok := o["channel_type"]; ok {
			t, ok := cfChannelTypes[v]
			if !ok {
				return cfErrorf("unknown channel_type %q", v)
			}
			opts = append(opts, WithMessageChannelType(t))
		}
		return c.Publish(arg(0), payload, opts...)
	case "join":
		return r.join(a, s)
	case "leave":
		err := c.StreamChannel(arg(0)).Leave()
		if err == nil {
			a.forgetFeeds(func(k string) bool { return k == cfFeedKey("", chKey{arg(0), ChannelTypeStream}) })
		}
		return err
	case "join_topic":
		var opts []StreamOption
		if m, ok := o["meta"]; ok {
			opts = append(opts, WithStreamMeta(m))
		}
		return c.StreamChannel(arg(0)).JoinTopic(arg(1), opts...)
	case "leave_topic":
		return c.StreamChannel(arg(0)).LeaveTopic(arg(1))
	case "publish_topic":
		opts := []StreamOption{WithStreamMessageType(MessageTypeString)}
		if ct, ok := o["custom_type"]; ok {
			opts = append(opts, WithStreamCustomType(ct))
		}
		return c.StreamChannel(arg(0)).PublishTopic(arg(1), []byte(arg(2)), opts...)
	case "subscribe_topic":
		return r.subscribeTopic(a, s)
	case "unsubscribe_topic":
		return c.StreamChannel(arg(0)).UnsubscribeTopic(arg(1), cfList(o["users"]))
	case "subscribed_users":
		got, err := c.StreamChannel(arg(0)).GetSubscribedUsers(arg(1))
		if err != nil {
			return err
		}
		if want, ok := o["users"]; ok && fmt.Sprint(got) != fmt.Sprint(cfList(want)) {
			return cfErrorf("subscribed users are %v, expected %v", got, cfList(want))
		}
		return nil
	}
	return r.serviceOp(a, s)
}

// The positional arguments each operation needs.
var cfArgCount = map[string]int{
	"set_parameters": 1, "subscribe": 1, "unsubscribe": 1, "publish": 2, "publish_binary": 2, "publish_size": 2,
	"join": 1, "leave": 1, "join_topic": 2, "leave_topic": 2, "publish_topic": 3, "subscribe_topic": 2,
	"unsubscribe_topic": 2, "subscribed_users": 2, "set_state": 1, "get_state": 2, "remove_state": 1, "who_now": 1,
	"where_now": 1, "set_channel_metadata": 1, "update_channel_metadata": 1, "remove_channel_metadata": 1,
	"get_channel_metadata": 1, "set_user_metadata": 1, "update_user_metadata": 1, "remove_user_metadata": 1,
	"get_user_metadata": 1, "subscribe_user_metadata": 1, "unsubscribe_user_metadata": 1, "set_lock": 2,
	"remove_lock": 2, "release_lock": 2, "acquire_lock": 2, "revoke_lock": 3, "get_locks": 1,
}

// subscribe: Subscribe, then the Go channels it hands out: the messages, and (per option) the
// presence, metadata and lock channels with their first snapshots.
func (r *cfRunner) subscribe(a *cfActor, s *cfStep) error {
	o, ch := s.opts, s.args[0]
	presence, metadata, lock := cfFlag(o, "with_presence", true), cfFlag(o, "with_metadata", false), cfFlag(o, "with_lock", false)
	msgs, err := a.c.Subscribe(ch, WithMessage(cfFlag(o, "with_message", true)), WithMessagePresence(presence),
		WithMessageMetadata(metadata), WithMessageLock(lock), WithMessageBeQuiet(cfFlag(o, "be_quiet", false)))
	if err != nil {
		return err
	}
	cfForward(r, a, (<-chan *Message)(msgs), func(m *Message) *cfEvent { return cfMessageEvent(ChannelTypeMessage, ch, "", m) })
	return r.openFeeds(a, chKey{ch, ChannelTypeMessage}, presence, metadata, lock)
}

// openFeeds takes the first snapshot of each service channel opened by a subscribe or join
// (once per subscription) and forwards its events.
func (r *cfRunner) openFeeds(a *cfActor, key chKey, presence, metadata, lock bool) error {
	if presence && a.newFeed(cfFeedKey("presence", key)) {
		snap, evs, err := a.c.Presence().GetPresenceChan(key.name, key.typ)
		if err != nil {
			return cfErrorf("GetPresenceChan(%s) after a successful subscribe/join: %v", key.name, err)
		}
		a.q.push(cfPresenceSnapshot(key, snap))
		cfForward(r, a, evs, func(e *PresenceEvent) *cfEvent { return cfPresenceEvent(key, e) })
	}
	if metadata && a.newFeed(cfFeedKey("metadata", key)) {
		snap, evs, err := a.c.Storage().GetChannelMetadataChan(key.name, key.typ)
		if err != nil {
			return cfErrorf("GetChannelMetadataChan(%s) after a successful subscribe/join: %v", key.name, err)
		}
		a.q.push(cfStorageSnapshot(key, "", snap))
		cfForward(r, a, evs, func(e *StorageEvent) *cfEvent { return cfStorageEvent(key, "", e) })
	}
	if lock && a.newFeed(cfFeedKey("lock", key)) {
		snap, evs, err := a.c.Lock().GetLockChan(key.name, key.typ)
		if err != nil {
			return cfErrorf("GetLockChan(%s) after a successful subscribe/join: %v", key.name, err)
		}
		a.q.push(cfLockSnapshot(key, snap))
		cfForward(r, a, evs, func(e *LockEvent) *cfEvent { return cfLockEvent(key, e) })
	}
	return nil
}

func (r *cfRunner) join(a *cfActor, s *cfStep) error {
	o, name := s.opts, s.args[0]
	tok, err := r.token(o["token"], a.user, name)
	if err != nil {
		return err
	}
	presence, metadata, lock := cfFlag(o, "with_presence", true), cfFlag(o, "with_metadata", false), cfFlag(o, "with_lock", false)
	opts := []StreamOption{WithStreamPresence(presence), WithStreamMetadata(metadata), WithStreamLock(lock),
		WithStreamBeQuiet(cfFlag(o, "be_quiet", false))}
	if tok != "" {
		opts = append(opts, WithStreamToken(tok))
	}
	sc := a.c.StreamChannel(name)
	snap, events, tokens, err := sc.Join(opts...)
	if err != nil {
		return err
	}
	a.q.push(cfTopicSnapshot(name, snap, ""))
	cfForward(r, a, events, cfTopicEvent)
	cfForward(r, a, tokens, cfTokenEvent)
	return r.openFeeds(a, chKey{name, ChannelTypeStream}, presence, metadata, lock)
}

// subscribeTopic: SubscribeTopic returns the topic's messages and, when some users could not
// be subscribed, the error of the first one (its code; the Go API names neither the user nor
// the users that succeeded).
func (r *cfRunner) subscribeTopic(a *cfActor, s *cfStep) error {
	o, name, topic := s.opts, s.args[0], s.args[1]
	msgs, err := a.c.StreamChannel(name).SubscribeTopic(topic, cfList(o["users"]))
	if msgs != nil {
		cfForward(r, a, msgs, func(m *Message) *cfEvent { return cfMessageEvent(ChannelTypeStream, name, topic, m) })
	}
	if _, ok := o["succeeded"]; ok {
		r.notChecked(s, "succeeded", "SubscribeTopic does not return the users it subscribed")
	}
	failed, checkFailed := o["failed"]
	if !checkFailed || s.wantErr != 0 {
		return err
	}
	ps := cfPairs(failed)
	if len(ps) == 0 {
		return err // none may fail: any error is the outcome
	}
	r.notChecked(s, "failed", "SubscribeTopic reports a failed user's code only, not the user id")
	want, _ := strconv.Atoi(ps[0].v)
	var re RTMError
	if err == nil {
		return cfErrorf("SubscribeTopic succeeded for every user; expected %s to fail with %d", ps[0].k, want)
	}
	if !cfAsRTM(err, &re) || re.Code() != want || msgs == nil {
		return cfErrorf("SubscribeTopic: %v (channel %v); expected the per-user code %d with the message channel", err, msgs != nil, want)
	}
	return nil
}
