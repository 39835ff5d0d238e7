package rtm2

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// End-to-end encryption (RTMConfig.Encryption, UndecryptableMessages), against the embedded
// server and `rtm2 serve`.

var testSalt = []byte("0123456789abcdef0123456789abcdef")

func aes128(key string) EncryptionConfig {
	return EncryptionConfig{Mode: EncryptionModeAES128GCM, Key: key, Salt: testSalt}
}

// encPlaces: the embedded server and `rtm2 serve` without app certificates.
func encPlaces(t *testing.T) []where {
	return []where{{name: "embedded"}, {name: "rtm2 serve", endpoint: startServer(t).endpoint}}
}

// encClient makes a client with the given encryption (freed when the test ends).
func encClient(t *testing.T, w where, user string, enc EncryptionConfig) (RTMClient, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 10)
	c := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: user, Endpoint: w.endpoint, RequestTimeout: 5000,
		Encryption: enc}, errs)
	t.Cleanup(func() {
		cancel()
		waitFreed(t, c)
	})
	return c, errs
}

// encLoggedIn is encClient + Login; it returns the peer-to-peer messages too.
func encLoggedIn(t *testing.T, w where, user string, enc EncryptionConfig) (RTMClient, <-chan *Message) {
	t.Helper()
	c, _ := encClient(t, w, user, enc)
	_, _, p2p, err := c.Login("")
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c, p2p
}

func subscribed(t *testing.T, c RTMClient, channel string, opts ...MessageOption) chan *Message {
	t.Helper()
	ch, err := c.Subscribe(channel, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", channel, err)
	}
	return ch
}

func publishText(t *testing.T, c RTMClient, channel, text string, opts ...MessageOption) {
	t.Helper()
	if err := c.Publish(channel, []byte(text), append([]MessageOption{WithMessageType(MessageTypeString)}, opts...)...); err != nil {
		t.Fatalf("publish %q: %v", text, err)
	}
}

// expectNext: the next message on ch is text.
func expectNext(t *testing.T, ch <-chan *Message, text string) {
	t.Helper()
	if m := recv(t, ch, "messages"); string(m.Message) != text {
		t.Fatalf("the next message is %q (from %s), want %q", m.Message, m.UserId, text)
	}
}

func expectUndecryptable(t *testing.T, c RTMClient, want uint64) {
	t.Helper()
	if got := UndecryptableMessages(c); got != want {
		t.Fatalf("UndecryptableMessages = %d, want %d", got, want)
	}
}

// Clients with the same settings exchange channel, peer-to-peer and topic messages and
// presence states in clear.
func TestEncryptionSharedSettingsTalkInClear(t *testing.T) {
	for _, w := range encPlaces(t) {
		t.Run(w.name, func(t *testing.T) {
			aliceID, bobID := uniq("alice"), uniq("bob")
			alice, _ := encLoggedIn(t, w, aliceID, aes128("shared secret"))
			bob, bobP2P := encLoggedIn(t, w, bobID, aes128("shared secret"))
			room := uniq("room")
			msgs := subscribed(t, bob, room)
			subscribed(t, alice, room, WithMessage(false))

			publishText(t, alice, room, "top secret plan", WithMessageCustomType("note"))
			m := recv(t, msgs, "channel messages")
			if string(m.Message) != "top secret plan" || m.UserId != aliceID || m.CustomType != "note" || m.Type != MessageTypeString {
				t.Fatalf("got %+v", m)
			}

			bin := []byte{0, 1, 2, 255}
			if err := alice.Publish(bobID, bin, WithMessageChannelType(ChannelTypeUser)); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, bobP2P, "peer-to-peer messages"); !bytes.Equal(m.Message, bin) || m.Type != MessageTypeBinary {
				t.Fatalf("got %+v", m)
			}

			stage := uniq("stage")
			if _, _, _, err := alice.StreamChannel(stage).Join(); err != nil {
				t.Fatal(err)
			}
			if err := alice.StreamChannel(stage).JoinTopic("t"); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := bob.StreamChannel(stage).Join(); err != nil {
				t.Fatal(err)
			}
			topicMsgs, err := bob.StreamChannel(stage).SubscribeTopic("t", []string{aliceID})
			if err != nil {
				t.Fatal(err)
			}
			if err := alice.StreamChannel(stage).PublishTopic("t", []byte("on stage")); err != nil {
				t.Fatal(err)
			}
			expectNext(t, topicMsgs, "on stage")

			_, events, err := bob.Presence().GetPresenceChan(room, ChannelTypeMessage)
			if err != nil {
				t.Fatal(err)
			}
			if err := alice.Presence().SetState(room, ChannelTypeMessage, map[string]string{"mood": "secretly happy"}); err != nil {
				t.Fatal(err)
			}
			e := recvWhere(t, events, "presence events", func(e *PresenceEvent) bool {
				return e.Type == PresenceTypeStateChange && e.UserId == aliceID
			})
			if e.Items["mood"] != "secretly happy" {
				t.Fatalf("state event %+v", e)
			}
			st, err := bob.Presence().GetState(room, ChannelTypeMessage, aliceID)
			if err != nil || st["mood"] != "secretly happy" {
				t.Fatalf("GetState: %v, %v", st, err)
			}
			users, _, err := bob.Presence().WhoNow(room, ChannelTypeMessage, WithPresenceState(true))
			if err != nil || users[aliceID] == nil || users[aliceID].State["mood"] != "secretly happy" {
				t.Fatalf("WhoNow: %v, %v", users, err)
			}
			expectUndecryptable(t, alice, 0)
			expectUndecryptable(t, bob, 0)
		})
	}
}

// A message that does not decrypt with the receiver's settings — another key, salt or mode,
// or encrypted to a plain client and the reverse — is never delivered, and is counted.
func TestEncryptionMismatchIsDroppedAndCounted(t *testing.T) {
	for _, w := range encPlaces(t) {
		t.Run(w.name, func(t *testing.T) {
			room := uniq("room")
			receiver, _ := encLoggedIn(t, w, uniq("receiver"), aes128("right"))
			got := subscribed(t, receiver, room)
			plain, _ := encLoggedIn(t, w, uniq("plain"), EncryptionConfig{})
			plainGot := subscribed(t, plain, room)
			wrongKey, _ := encLoggedIn(t, w, uniq("wrong-key"), aes128("wrong"))
			wrongSalt, _ := encLoggedIn(t, w, uniq("wrong-salt"),
				EncryptionConfig{Mode: EncryptionModeAES128GCM, Key: "right", Salt: []byte("pepper")})
			otherMode, _ := encLoggedIn(t, w, uniq("other-mode"),
				EncryptionConfig{Mode: EncryptionModeAES256GCM, Key: "right", Salt: testSalt})
			good, _ := encLoggedIn(t, w, uniq("good"), aes128("right"))

			publishText(t, wrongKey, room, "with the wrong key")
			publishText(t, wrongSalt, room, "with the wrong salt")
			publishText(t, otherMode, room, "in another mode")
			publishText(t, good, room, "the good one")
			// Published one after the other: the good one is the first the receiver gets, and
			// the three before it were counted by then.
			expectNext(t, got, "the good one")
			expectUndecryptable(t, receiver, 3)
			// The plain client dropped all four, and reads its own plain message; the
			// encrypting receiver drops that one.
			publishText(t, plain, room, "in clear")
			expectNext(t, plainGot, "in clear")
			expectUndecryptable(t, plain, 4)
			publishText(t, good, room, "after")
			expectNext(t, got, "after")
			expectUndecryptable(t, receiver, 4)
			quiet(t, got, 100*time.Millisecond, "message")
			expectUndecryptable(t, good, 0)

			// Presence states: a plain value is left out by an encrypting reader, and the reverse.
			if err := plain.Presence().SetState(room, ChannelTypeMessage, map[string]string{"k": "plain"}); err != nil {
				t.Fatal(err)
			}
			if err := receiver.Presence().SetState(room, ChannelTypeMessage, map[string]string{"k": "sealed"}); err != nil {
				t.Fatal(err)
			}
			if st, err := receiver.Presence().GetState(room, ChannelTypeMessage, plain.(*client).userID); err != nil || len(st) != 0 {
				t.Fatalf("the plain state read by an encrypting client: %v, %v", st, err)
			}
			if st, err := plain.Presence().GetState(room, ChannelTypeMessage, receiver.(*client).userID); err != nil || len(st) != 0 {
				t.Fatalf("the encrypted state read by a plain client: %v, %v", st, err)
			}
			if st, err := good.Presence().GetState(room, ChannelTypeMessage, receiver.(*client).userID); err != nil || st["k"] != "sealed" {
				t.Fatalf("the encrypted state read with the same settings: %v, %v", st, err)
			}
		})
	}
}

// Invalid settings are ERROR_INVALID_ENCRYPTION_PARAMETER (10020), like any configuration
// error: sent to errChan and returned by every call.
func TestEncryptionInvalidSettingsAre10020(t *testing.T) {
	for name, enc := range map[string]EncryptionConfig{
		"no key":             {Mode: EncryptionModeAES128GCM, Salt: testSalt},
		"unknown mode":       {Mode: 3, Key: "k"},
		"negative mode":      {Mode: -1, Key: "k"},
		"mode beyond uint32": {Mode: 1 << 32, Key: "k"},
		"salt of 33 bytes":   {Mode: EncryptionModeAES256GCM, Key: "k", Salt: make([]byte, 33)},
		"long salt, no mode": {Salt: make([]byte, 33)},
		"a key, no mode":     {Key: "would go out in clear"},
		"a salt, no mode":    {Salt: []byte("s")},
		"NUL in the key":     {Mode: EncryptionModeAES256GCM, Key: "se\x00cret"},
	} {
		t.Run(name, func(t *testing.T) {
			c, errs := encClient(t, where{}, uniq("bad-enc"), enc)
			expectCode(t, recv(t, errs, "errChan"), ERROR_INVALID_ENCRYPTION_PARAMETER)
			_, _, _, err := c.Login("")
			expectCode(t, err, ERROR_INVALID_ENCRYPTION_PARAMETER)
			if code := err.(RTMError).Code(); code != 10020 {
				t.Fatalf("code %d", code)
			}
			expectUndecryptable(t, c, 0)
		})
	}
	// Accepted: a shorter salt (zero-padded), no salt, a full one.
	for name, enc := range map[string]EncryptionConfig{
		"short salt": {Mode: EncryptionModeAES256GCM, Key: "k", Salt: []byte("short")},
		"no salt":    {Mode: EncryptionModeAES128GCM, Key: "k"},
		"32 bytes":   {Mode: EncryptionModeAES128GCM, Key: "k", Salt: testSalt},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := encLoggedIn(t, where{}, uniq("ok-enc"), enc)
			expectUndecryptable(t, c, 0)
		})
	}
	if UndecryptableMessages(nil) != 0 {
		t.Fatal("UndecryptableMessages(nil) must be 0")
	}
}
