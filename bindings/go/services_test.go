package rtm2

import (
	"sync"
	"testing"
	"time"
)

var embedded = where{name: "embedded"}

func TestPresence(t *testing.T) {
	alice, _, _, _ := loggedIn(t, embedded, uniq("alice"))
	bobID := uniq("bob")
	bob, _, _, _ := loggedIn(t, embedded, bobID)
	aliceID := alice.(*client).userID
	room := uniq("room")
	_, _, err := alice.Presence().GetPresenceChan(room, ChannelTypeMessage)
	expectCode(t, err, ERROR_CHANNEL_NOT_SUBSCRIBED)
	if _, err := alice.Subscribe(room, WithMessagePresence(true)); err != nil {
		t.Fatal(err)
	}
	snap, events, err := alice.Presence().GetPresenceChan(room, ChannelTypeMessage)
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(snap); len(got) != 1 || got[0] != aliceID {
		t.Fatalf("snapshot %v", got)
	}
	// State set before joining is cached and applied with the subscribe.
	if err := bob.Presence().SetState(room, ChannelTypeMessage, map[string]string{"mood": "calm"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	join := recvWhere(t, events, "presence events", func(e *PresenceEvent) bool { return e.Type == PresenceTypeJoinChannel })
	if join.UserId != bobID {
		t.Fatalf("join %+v", join)
	}
	if st, err := alice.Presence().GetState(room, ChannelTypeMessage, bobID); err != nil || st["mood"] != "calm" {
		t.Fatalf("the state cached before subscribing: %v %v", st, err)
	}
	if err := bob.Presence().SetState(room, ChannelTypeMessage, map[string]string{"mood": "busy", "seat": "3"}); err != nil {
		t.Fatal(err)
	}
	ch := recvWhere(t, events, "presence events", func(e *PresenceEvent) bool {
		return e.Type == PresenceTypeStateChange && e.Items["mood"] == "busy"
	})
	if ch.UserId != bobID || ch.Items["mood"] != "busy" || ch.Items["seat"] != "3" {
		t.Fatalf("state change %+v", ch)
	}
	users, next, err := alice.Presence().WhoNow(room, ChannelTypeMessage, WithPresenceState(true))
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	if got := sorted(users); len(got) != 2 || users[bobID].State["seat"] != "3" {
		t.Fatalf("who now %v %+v", got, users[bobID])
	}
	users, _, err = alice.Presence().GetOnlineUsers(room, ChannelTypeMessage, WithPresenceUserId(true))
	if err != nil || len(users) != 2 || users[bobID].UserId != bobID {
		t.Fatalf("online users %v %v", users, err)
	}
	where, err := alice.Presence().WhereNow(bobID)
	if err != nil || len(where) != 1 || where[0].Channel != room || where[0].Type != ChannelTypeMessage {
		t.Fatalf("where now %+v %v", where, err)
	}
	if chs, err := alice.Presence().GetUserChannels(bobID); err != nil || len(chs) != 1 {
		t.Fatalf("user channels %+v %v", chs, err)
	}
	state, err := alice.Presence().GetState(room, ChannelTypeMessage, bobID)
	if err != nil || state["mood"] != "busy" {
		t.Fatalf("state %v %v", state, err)
	}
	if err := bob.Presence().RemoveState(room, ChannelTypeMessage, []string{"seat"}); err != nil {
		t.Fatal(err)
	}
	if state, _ := alice.Presence().GetState(room, ChannelTypeMessage, bobID); state["seat"] != "" || state["mood"] != "busy" {
		t.Fatalf("after remove %v", state)
	}
	if err := bob.Unsubscribe(room); err != nil {
		t.Fatal(err)
	}
	leave := recvWhere(t, events, "presence events", func(e *PresenceEvent) bool { return e.Type == PresenceTypeLeaveChannel })
	if leave.UserId != bobID {
		t.Fatalf("leave %+v", leave)
	}
	expectCode(t, bob.Presence().SetState(room, ChannelTypeMessage, map[string]string{"": "x"}), ERROR_PRESENCE_INVALID_STATE_KEY)
}

func TestStorageCompareAndSet(t *testing.T) {
	alice, _, _, _ := loggedIn(t, embedded, uniq("alice"))
	bob, _, _, _ := loggedIn(t, embedded, uniq("bob"))
	doc := uniq("doc")
	_, _, err := alice.Storage().GetChannelMetadataChan(doc, ChannelTypeMessage)
	expectCode(t, err, ERROR_STORAGE_NOT_SUBSCRIBE)
	if _, err := alice.Subscribe(doc, WithMessageMetadata(true)); err != nil {
		t.Fatal(err)
	}
	snap, events, err := alice.Storage().GetChannelMetadataChan(doc, ChannelTypeMessage)
	if err != nil || len(snap) != 0 {
		t.Fatal(snap, err)
	}
	if err := bob.Storage().SetChannelMetadata(doc, ChannelTypeMessage, map[string]*MetadataItem{
		"title": {Key: "title", Value: "v1"}, "count": {Value: "0"}}, WithStorageRecordAuthor(true)); err != nil {
		t.Fatal(err)
	}
	set := recv(t, events, "storage events")
	if set.Items["title"].Value != "v1" || set.Items["title"].Author != bob.(*client).userID || set.Items["count"].Value != "0" {
		t.Fatalf("event %+v", set)
	}
	major, items, err := alice.Storage().GetChannelMetadata(doc, ChannelTypeMessage)
	if err != nil || items["count"] == nil || major <= 0 {
		t.Fatal(major, items, err)
	}
	// Concurrent conditional writes on the same item revision: exactly one wins.
	rev := items["count"].Revision
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := alice
			if i%2 == 1 {
				c = bob
			}
			results[i] = c.Storage().UpdateChannelMetadata(doc, ChannelTypeMessage,
				map[string]*MetadataItem{"count": {Value: "1", Revision: rev}})
		}(i)
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch err {
		case nil:
			won++
		case ERROR_STORAGE_OUTDATED_REVISION:
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d conditional writes won, want exactly 1 (%v)", won, results)
	}
	// The major revision as a condition.
	major, _, _ = alice.Storage().GetChannelMetadata(doc, ChannelTypeMessage)
	expectCode(t, alice.Storage().SetChannelMetadata(doc, ChannelTypeMessage, map[string]*MetadataItem{"x": {Value: "1"}},
		WithStorageMajorRev(major+100)), ERROR_STORAGE_OUTDATED_REVISION)
	if err := alice.Storage().SetChannelMetadata(doc, ChannelTypeMessage, map[string]*MetadataItem{"x": {Value: "1"}},
		WithStorageMajorRev(major), WithStorageRecordTs(true)); err != nil {
		t.Fatal(err)
	}
	if err := alice.Storage().RemoveChannelMetadata(doc, ChannelTypeMessage, map[string]*MetadataItem{"x": nil}); err != nil {
		t.Fatal(err)
	}
	if _, items, _ := alice.Storage().GetChannelMetadata(doc, ChannelTypeMessage); items["x"] != nil || items["title"] == nil {
		t.Fatalf("after remove %v", items)
	}
	expectCode(t, alice.Storage().UpdateChannelMetadata(doc, ChannelTypeMessage, map[string]*MetadataItem{"missing": {Value: "1"}}),
		ERROR_STORAGE_OUTDATED_REVISION)
	// User metadata.
	me := alice.(*client).userID
	if err := alice.Storage().SetUserMetadata(me, map[string]*MetadataItem{"name": {Value: "Alice"}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Storage().UpdateUserMetadata(me, map[string]*MetadataItem{"name": {Value: "Al"}}); err != nil {
		t.Fatal(err)
	}
	_, um, err := bob.Storage().GetUserMetadata(me)
	if err != nil || um["name"].Value != "Al" {
		t.Fatal(um, err)
	}
	expectCode(t, bob.Storage().UnsubscribeUserMetadata(me), ERROR_STORAGE_NOT_SUBSCRIBE)
	usnap, uev, err := bob.Storage().SubscribeUserMetadata(me)
	if err != nil || usnap["name"].Value != "Al" {
		t.Fatal(usnap, err)
	}
	if err := alice.Storage().RemoveUserMetadata(me, map[string]*MetadataItem{"name": nil}); err != nil {
		t.Fatal(err)
	}
	if rm := recv(t, uev, "user metadata events"); rm.EventType == StorageTypeSnapshot || rm.Items["name"] != nil && rm.EventType != StorageTypeRemove {
		t.Fatalf("remove event %+v", rm)
	}
	if _, um, _ := bob.Storage().GetUserMetadata(me); um["name"] != nil {
		t.Fatalf("after remove %v", um)
	}
	if err := bob.Storage().UnsubscribeUserMetadata(me); err != nil {
		t.Fatal(err)
	}
}

func TestLocks(t *testing.T) {
	aliceID, bobID := uniq("alice"), uniq("bob")
	alice, _, _, _ := loggedIn(t, embedded, aliceID)
	bob, _, _, _ := loggedIn(t, embedded, bobID)
	ch := uniq("locks")
	if _, err := alice.Subscribe(ch, WithMessageLock(true)); err != nil {
		t.Fatal(err)
	}
	if err := alice.Lock().Set(ch, ChannelTypeMessage, "door", 30); err != nil {
		t.Fatal(err)
	}
	snap, events, err := alice.Lock().GetLockChan(ch, ChannelTypeMessage)
	if err != nil {
		t.Fatal(err)
	}
	if d := snap["door"]; d == nil || d.Owner != "" || d.TTL != 30 {
		// The SET may come after the snapshot, as an event.
		set := recvWhere(t, events, "lock events", func(e *LockEvent) bool { return e.Type == LockTypeSet })
		if set.Details[0].Name != "door" {
			t.Fatalf("set %+v", set.Details[0])
		}
	}
	expectCode(t, alice.Lock().Set(ch, ChannelTypeMessage, "door", 30), ERROR_LOCK_ALREADY_EXIST)
	if err := recv(t, alice.Lock().Acquire(ch, ChannelTypeMessage, "door", false), "acquire"); err != nil {
		t.Fatal(err)
	}
	acq := recvWhere(t, events, "lock events", func(e *LockEvent) bool { return e.Type == LockTypeAcquired })
	if acq.Details[0].Owner != aliceID || acq.Details[0].FencingToken == 0 {
		t.Fatalf("acquired %+v", acq.Details[0])
	}
	token := acq.Details[0].FencingToken
	expectCode(t, recv(t, bob.Lock().Acquire(ch, ChannelTypeMessage, "door", false), "acquire"), ERROR_LOCK_ACQUIRE_FAILED)
	// Lock-gated writes, with the fencing token.
	data := map[string]*MetadataItem{"k": {Value: "v"}}
	if err := alice.Storage().SetChannelMetadata(ch, ChannelTypeMessage, data, WithStorageLock("door"),
		WithStorageFencingToken(token)); err != nil {
		t.Fatal(err)
	}
	expectCode(t, bob.Storage().SetChannelMetadata(ch, ChannelTypeMessage, data, WithStorageLock("door")),
		ERROR_STORAGE_LOCK_NOT_ACQUIRED)
	// A retrying acquirer waits in the queue and gets it on release.
	waiting := bob.Lock().Acquire(ch, ChannelTypeMessage, "door", true)
	quiet(t, waiting, 200*time.Millisecond, "acquire outcome")
	if err := alice.Lock().Release(ch, ChannelTypeMessage, "door"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, waiting, "acquire"); err != nil {
		t.Fatal(err)
	}
	locks, err := alice.Lock().Get(ch, ChannelTypeMessage)
	if err != nil || locks["door"].Owner != bobID || locks["door"].FencingToken <= token {
		t.Fatalf("locks %+v %v", locks["door"], err)
	}
	// The old grant's token is stale now, even once alice holds the lock again.
	if err := alice.Lock().Revoke(ch, ChannelTypeMessage, "door", bobID); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, alice.Lock().Acquire(ch, ChannelTypeMessage, "door", false), "acquire"); err != nil {
		t.Fatal(err)
	}
	expectCode(t, alice.Storage().SetChannelMetadata(ch, ChannelTypeMessage, data, WithStorageLock("door"),
		WithStorageFencingToken(token)), ERROR_STORAGE_LOCK_NOT_ACQUIRED)
	expectCode(t, alice.Lock().Revoke(ch, ChannelTypeMessage, "door", bobID), ERROR_LOCK_NOT_ACQUIRED)
	if err := alice.Lock().Remove(ch, ChannelTypeMessage, "door"); err != nil {
		t.Fatal(err)
	}
	recvWhere(t, events, "lock events", func(e *LockEvent) bool { return e.Type == LockTypeRemove })
	expectCode(t, alice.Lock().Remove(ch, ChannelTypeMessage, "door"), ERROR_LOCK_NOT_EXIST)
}
