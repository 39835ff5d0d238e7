package rtm2

// The conformance runner's view of a client's events: every Go channel the client hands out
// (Login's connection, token and peer-to-peer channels, Subscribe's and SubscribeTopic's
// message channels, Join's topic-event and token channels, the presence / metadata / lock
// channels of Get…Chan and SubscribeUserMetadata) is forwarded, tagged with what that Go
// channel stands for, into one queue per client; the first snapshots that the Go API returns
// as values (Join, Get…Chan, SubscribeUserMetadata) are queued as SNAPSHOT events.

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cfEvent is one event as the scenarios see it.
type cfEvent struct {
	kind string
	// alts: the event's fields; it matches an expectation if one of them does (a topic
	// snapshot matches for any of its (topic, publisher) pairs).
	alts []map[string]string
	// missing: fields the Go API does not give for this event, and why.
	missing map[string]string
}

func (e *cfEvent) String() string {
	var parts []string
	for _, a := range e.alts {
		var kv []string
		for _, k := range cfKeys(a) {
			v := a[k]
			if len(v) > 40 {
				v = v[:40] + "…"
			}
			kv = append(kv, k+"="+strconv.Quote(v))
		}
		parts = append(parts, strings.Join(kv, " "))
	}
	return e.kind + "{" + strings.Join(parts, " | ") + "}"
}

// The fields each kind of expectation may name (tests/conformance/README.md).
var cfKindFields = map[string][]string{
	"message":           {"channel_type", "channel", "topic", "publisher", "text", "hex", "message_type", "custom_type"},
	"topic_event":       {"type", "channel", "publisher", "topic", "meta"},
	"link_state":        {"service", "state", "reason", "channel"},
	"token_will_expire": {"channel"},
	"presence":          {"type", "channel", "channel_type", "publisher", "states", "snapshot", "joined", "left", "timed_out", "changed", "total"},
	"storage":           {"type", "storage_type", "channel_type", "target", "publisher", "items", "major"},
	"lock":              {"type", "channel", "channel_type", "lock", "owner", "publisher", "ttl", "snapshot"},
}

// Fields holding lists, compared as sets.
var cfSetFields = map[string]map[string]bool{
	"presence": {"states": true, "snapshot": true, "joined": true, "left": true, "timed_out": true, "changed": true},
	"storage":  {"items": true},
	"lock":     {"snapshot": true},
}

// cfQueue is a client's ordered event queue (unbounded: the runner reads it step by step).
type cfQueue struct {
	mu     sync.Mutex
	evs    []*cfEvent
	notify chan struct{}
}

func newCfQueue() *cfQueue { return &cfQueue{notify: make(chan struct{}, 1)} }

func (q *cfQueue) push(e *cfEvent) {
	q.mu.Lock()
	q.evs = append(q.evs, e)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop returns the oldest event, waiting until deadline (nil when none came).
func (q *cfQueue) pop(deadline time.Time) *cfEvent {
	for {
		q.mu.Lock()
		if len(q.evs) > 0 {
			e := q.evs[0]
			q.evs = q.evs[1:]
			q.mu.Unlock()
			return e
		}
		q.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-q.notify:
		case <-t.C:
		}
		t.Stop()
	}
}

// Names of the Go API's values in the scenarios' words.
var (
	cfChannelTypeNames = map[ChannelType]string{ChannelTypeNone: "NONE", ChannelTypeMessage: "MESSAGE",
		ChannelTypeStream: "STREAM", ChannelTypeUser: "USER"}
	cfTopicTypeNames = map[TopicEventType]string{TopicEventNone: "NONE", TopicEventSnapshot: "SNAPSHOT",
		TopicEventJoin: "REMOTE_JOIN", TopicEventLeave: "REMOTE_LEAVE"}
	cfPresenceTypeNames = map[PresenceEventType]string{PresenceTypeNone: "NONE", PresenceTypeSnapshot: "SNAPSHOT",
		PresenceTypeInterval: "INTERVAL", PresenceTypeJoinChannel: "REMOTE_JOIN", PresenceTypeLeaveChannel: "REMOTE_LEAVE",
		PresenceTypeTimeout: "REMOTE_TIMEOUT", PresenceTypeStateChange: "REMOTE_STATE_CHANGED",
		PresenceTypeOutOfService: "ERROR_OUT_OF_SERVICE"}
	cfStorageTypeNames = map[StorageEventType]string{StorageTypeNone: "NONE", StorageTypeSnapshot: "SNAPSHOT",
		StorageTypeSet: "SET", StorageTypeUpdate: "UPDATE", StorageTypeRemove: "REMOVE"}
	cfLockTypeNames = map[LockEventType]string{LockTypeNone: "NONE", LockTypeSnapshot: "SNAPSHOT", LockTypeSet: "SET",
		LockTypeRemove: "REMOVED", LockTypeAcquired: "ACQUIRED", LockTypeReleased: "RELEASED", LockTypeExpired: "EXPIRED"}
	cfConnStateNames = map[int32]string{ConnectionStateDISCONNECTED: "DISCONNECTED", ConnectionStateCONNECTING: "CONNECTING",
		ConnectionStateCONNECTED: "CONNECTED", ConnectionStateRECONNECTING: "RECONNECTING", ConnectionStateFAILED: "FAILED"}
)

func cfName[K comparable](names map[K]string, v K) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprint(v)
}

// The Go SDK reports the legacy connection states, not the link states the scenarios name:
// an expected link state stands for these Go states (the translation of router.go legacyState).
var cfLinkStateInGo = map[string][]string{
	"IDLE":         {"DISCONNECTED"},
	"CONNECTING":   {"CONNECTING", "RECONNECTING"},
	"CONNECTED":    {"CONNECTED"},
	"DISCONNECTED": {"RECONNECTING"},
	"SUSPENDED":    {"RECONNECTING"},
	"FAILED":       {"FAILED"},
}

// An expected link-state reason stands for this Go ConnectionChangedReason.
var cfLinkReasonInGo = map[string]int32{
	"LOGIN":                ConnectionChangedReasonConnecting,
	"LOGIN_SUCCESS":        ConnectionChangedReasonLoginSuccess,
	"LOGIN_NOT_AUTHORIZED": ConnectionChangedReasonInvalidToken,
	"LOGOUT":               ConnectionChangedReasonLogout,
	"AUTO_RECONNECT":       ConnectionChangedReasonInterrupted,
	"RECONNECT_SUCCESS":    ConnectionChangedReasonRejoinSuccess,
	"JOIN_SUCCESS":         ConnectionChangedReasonJoinSuccess,
	"LEAVE":                ConnectionChangedReasonLeaveChannel,
	"INVALID_TOKEN":        ConnectionChangedReasonInvalidToken,
	"TOKEN_EXPIRED":        ConnectionChangedReasonTokenExpired,
	"SAME_UID_LOGIN":       ConnectionChangedReasonSameUidLogin,
	"KICKED_OUT_BY_SERVER": ConnectionChangedReasonBannedByServer,
	"KEEP_ALIVE_TIMEOUT":   ConnectionChangedReasonKeepaliveTimeout,
}

// ---- conversions of the Go API's events ----

func cfMessageEvent(ct ChannelType, channel, topic string, m *Message) *cfEvent {
	text := ""
	if m.Type == MessageTypeString {
		text = string(m.Message)
	}
	mt := "BINARY"
	if m.Type == MessageTypeString {
		mt = "STRING"
	}
	return &cfEvent{kind: "message", alts: []map[string]string{{
		"channel_type": cfName(cfChannelTypeNames, ct), "channel": channel, "topic": topic, "publisher": m.UserId,
		"text": text, "hex": hex.EncodeToString(m.Message), "message_type": mt, "custom_type": m.CustomType,
	}}}
}

const cfNoTopicMeta = "the Go TopicEvent and Join snapshot carry no publisher meta"

// cfTopicSnapshot: a topic SNAPSHOT with one alternative per (topic, publisher).
func cfTopicSnapshot(channel string, snap map[string][]string, onlyTopic string) *cfEvent {
	e := &cfEvent{kind: "topic_event", missing: map[string]string{"meta": cfNoTopicMeta}}
	topics := cfKeys(snap)
	if onlyTopic != "" {
		topics = []string{onlyTopic}
	}
	for _, topic := range topics {
		for _, p := range snap[topic] {
			e.alts = append(e.alts, map[string]string{"type": "SNAPSHOT", "channel": channel, "topic": topic, "publisher": p})
		}
		if len(snap[topic]) == 0 {
			e.alts = append(e.alts, map[string]string{"type": "SNAPSHOT", "channel": channel, "topic": topic, "publisher": ""})
		}
	}
	if len(e.alts) == 0 {
		e.alts = []map[string]string{{"type": "SNAPSHOT", "channel": channel, "topic": "", "publisher": ""}}
	}
	return e
}

func cfTopicEvent(e *TopicEvent) *cfEvent {
	if e.Type == TopicEventSnapshot {
		return cfTopicSnapshot(e.Channel, e.Snapshot, e.Topic)
	}
	return &cfEvent{kind: "topic_event", missing: map[string]string{"meta": cfNoTopicMeta}, alts: []map[string]string{{
		"type": cfName(cfTopicTypeNames, e.Type), "channel": e.Channel, "publisher": e.UserId, "topic": e.Topic,
	}}}
}

func cfConnEvent(e *ConnectionEvent) *cfEvent {
	const why = "the Go ConnectionEvent has no service type or channel (it has State and Reason)"
	return &cfEvent{kind: "link_state", missing: map[string]string{"service": why, "channel": why},
		alts: []map[string]string{{"state": cfName(cfConnStateNames, e.State), "reason": strconv.Itoa(int(e.Reason))}}}
}

func cfTokenEvent(channel string) *cfEvent {
	return &cfEvent{kind: "token_will_expire", alts: []map[string]string{{"channel": channel}}}
}

const cfNoTotal = "the Go PresenceEvent has no total occupancy"

func cfPresenceEvent(key chKey, e *PresenceEvent) *cfEvent {
	snapshot, changed := "", ""
	switch e.Type {
	case PresenceTypeSnapshot:
		snapshot = cfCanon(cfKeys(e.States))
	case PresenceTypeInterval:
		changed = cfCanon(cfKeys(e.States))
	}
	return &cfEvent{kind: "presence", missing: map[string]string{"total": cfNoTotal}, alts: []map[string]string{{
		"type": cfName(cfPresenceTypeNames, e.Type), "channel": key.name, "channel_type": cfName(cfChannelTypeNames, key.typ),
		"publisher": e.UserId, "states": cfCanonMap(e.Items), "snapshot": snapshot, "joined": cfCanon(e.Joined),
		"left": cfCanon(e.Left), "timed_out": cfCanon(e.Timeout), "changed": changed,
	}}}
}

// cfPresenceSnapshot: the first snapshot, as GetPresenceChan returns it.
func cfPresenceSnapshot(key chKey, users map[string]*UserState) *cfEvent {
	states := map[string]map[string]string{}
	for id, u := range users {
		states[id] = u.State
	}
	return cfPresenceEvent(key, &PresenceEvent{Type: PresenceTypeSnapshot, States: states})
}

func cfItems(items map[string]*MetadataItem) string {
	var xs []string
	for k, it := range items {
		xs = append(xs, k+":"+it.Value)
	}
	return cfCanon(xs)
}

const cfNoStoragePublisher = "the Go StorageEvent has no publisher"

// cfStorageEvent: user is "" for a channel's metadata (key), else the user's.
func cfStorageEvent(key chKey, user string, e *StorageEvent) *cfEvent {
	f := map[string]string{"type": cfName(cfStorageTypeNames, e.EventType), "items": cfItems(e.Items),
		"major": strconv.FormatInt(e.MajorRevision, 10)}
	missing := map[string]string{"publisher": cfNoStoragePublisher}
	if user == "" {
		f["storage_type"], f["target"], f["channel_type"] = "CHANNEL", key.name, cfName(cfChannelTypeNames, key.typ)
	} else {
		f["storage_type"], f["target"] = "USER", user
		missing["channel_type"] = "the Go StorageEvent has no channel type"
	}
	return &cfEvent{kind: "storage", alts: []map[string]string{f}, missing: missing}
}

// cfStorageSnapshot: the first snapshot, as GetChannelMetadataChan / SubscribeUserMetadata
// return it (items only).
func cfStorageSnapshot(key chKey, user string, items map[string]*MetadataItem) *cfEvent {
	e := cfStorageEvent(key, user, &StorageEvent{EventType: StorageTypeSnapshot, Items: items})
	delete(e.alts[0], "major")
	e.missing["major"] = "the first metadata snapshot is returned as a map of items, without its major revision"
	return e
}

const cfNoLockPublisher = "the Go LockEvent has no publisher"

func cfLockEvent(key chKey, e *LockEvent) *cfEvent {
	f := map[string]string{"type": cfName(cfLockTypeNames, e.Type), "channel": key.name,
		"channel_type": cfName(cfChannelTypeNames, key.typ), "lock": "", "owner": "", "ttl": "", "snapshot": ""}
	if e.Type == LockTypeSnapshot {
		var xs []string
		for _, d := range e.Details {
			xs = append(xs, d.Name+":"+d.Owner)
		}
		f["snapshot"] = cfCanon(xs)
	} else if len(e.Details) > 0 {
		d := e.Details[0]
		f["lock"], f["owner"], f["ttl"] = d.Name, d.Owner, strconv.FormatUint(uint64(d.TTL), 10)
	}
	return &cfEvent{kind: "lock", alts: []map[string]string{f}, missing: map[string]string{"publisher": cfNoLockPublisher}}
}

func cfLockSnapshot(key chKey, locks map[string]*LockDetail) *cfEvent {
	e := &LockEvent{Type: LockTypeSnapshot}
	names := cfKeys(locks)
	sort.Strings(names)
	for _, n := range names {
		e.Details = append(e.Details, locks[n])
	}
	return cfLockEvent(key, e)
}
