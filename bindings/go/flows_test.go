package rtm2

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// The three flows of the seed SDK's README, against the embedded server and `rtm2 serve`
// with tokens.

// Stream channel: join, join a topic, publish "Hello world!\0"; another client subscribes the
// topic and receives it; subscribed users, unsubscribe, leave topic, leave, logout.
func TestStreamChannelFlow(t *testing.T) {
	for _, w := range places(t) {
		t.Run(w.name, func(t *testing.T) {
			alice, aliceConn, _, _ := loggedIn(t, w, uniq("alice"))
			bob, _, _, _ := loggedIn(t, w, uniq("bob"))
			aliceID := alice.(*client).userID
			name := uniq("MyChannel")
			// With app certificates, a stream channel is joined with a token of that channel.
			joinOpts := func(user string) []StreamOption {
				if !w.tokens {
					return nil
				}
				tok, err := BuildStreamToken(appID, cert, name, user, 600)
				if err != nil {
					t.Fatal(err)
				}
				return []StreamOption{WithStreamToken(tok)}
			}
			if _, _, _, err := alice.StreamChannel(name).Join(joinOpts(aliceID)...); err != nil {
				t.Fatal(err)
			}
			a := alice.StreamChannel(name)
			if a != alice.StreamChannel(name) || a.ChannelName() != name {
				t.Fatal("StreamChannel must return the same channel for the same name")
			}
			if err := a.JoinTopic("MyTopic"); err != nil {
				t.Fatal(err)
			}
			b := bob.StreamChannel(name)
			snapshot, topicEvents, _, err := b.Join(joinOpts(bob.(*client).userID)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := snapshot["MyTopic"]; len(got) != 1 || got[0] != aliceID {
				t.Fatalf("join snapshot %v: want MyTopic -> [%s]", snapshot, aliceID)
			}
			msgs, err := b.SubscribeTopic("MyTopic", []string{aliceID})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.PublishTopic("MyTopic", []byte("Hello world!\x00")); err != nil {
				t.Fatal(err)
			}
			m := recv(t, msgs, "topic messages")
			if string(m.Message) != "Hello world!\x00" || m.UserId != aliceID || m.Type != MessageTypeBinary {
				t.Fatalf("got %+v", m)
			}
			users, err := b.GetSubscribedUsers("MyTopic")
			if err != nil || len(users) != 1 || users[0] != aliceID {
				t.Fatalf("subscribed users %v, %v", users, err)
			}
			// A topic event per topic: alice leaves MyTopic.
			if err := b.UnsubscribeTopic("MyTopic", []string{aliceID}); err != nil {
				t.Fatal(err)
			}
			if users, _ := b.GetSubscribedUsers("MyTopic"); len(users) != 0 {
				t.Fatalf("still subscribed to %v", users)
			}
			if err := a.LeaveTopic("MyTopic"); err != nil {
				t.Fatal(err)
			}
			e := recvWhere(t, topicEvents, "topic events", func(e *TopicEvent) bool { return e.Type == TopicEventLeave })
			if e.Topic != "MyTopic" || e.UserId != aliceID || e.Channel != name {
				t.Fatalf("leave event %+v", e)
			}
			if err := a.Leave(); err != nil {
				t.Fatal(err)
			}
			expectCode(t, a.Leave(), ERROR_CHANNEL_NOT_JOINED)
			// Joining and leaving a stream channel is not a change of the client's connection.
			for len(aliceConn) > 0 {
				if e := <-aliceConn; e.State != ConnectionStateCONNECTING && e.State != ConnectionStateCONNECTED {
					t.Fatalf("a stream channel's join/leave reached the connection events: %+v", e)
				}
			}
			if err := alice.Logout(); err != nil {
				t.Fatal(err)
			}
			_, _, _, err = a.Join(joinOpts(aliceID)...)
			expectCode(t, err, ERROR_NOT_LOGIN)
		})
	}
}

// Peer-to-peer: messages to a remote user id, once every tick; an offline user is 11033.
func TestPeerToPeerFlow(t *testing.T) {
	for _, w := range places(t) {
		t.Run(w.name, func(t *testing.T) {
			local, _, _, _ := loggedIn(t, w, uniq("local"))
			remoteID := uniq("remote")
			remote, _, _, p2p := loggedIn(t, w, remoteID)
			_ = remote
			ticker := time.NewTicker(50 * time.Millisecond)
			defer ticker.Stop()
			for cnt := 0; cnt < 5; cnt++ {
				<-ticker.C
				message := fmt.Sprintf("message-p2p-message-%d", cnt)
				if err := local.Publish(remoteID, []byte(message), WithMessageType(MessageTypeString),
					WithMessageChannelType(ChannelTypeUser)); err != nil {
					t.Fatal(err)
				}
			}
			for cnt := 0; cnt < 5; cnt++ {
				m := recv(t, p2p, "peer-to-peer messages")
				if want := fmt.Sprintf("message-p2p-message-%d", cnt); string(m.Message) != want ||
					m.Type != MessageTypeString || m.UserId != local.(*client).userID {
					t.Fatalf("got %+v, want %q", m, want)
				}
			}
			err := local.Publish(uniq("nobody"), []byte("hello?"), WithMessageChannelType(ChannelTypeUser))
			expectCode(t, err, ERROR_CHANNEL_RECEIVER_OFFLINE)
		})
	}
}

// Error handling: connection events, token will expire -> RenewToken with a short-lived token,
// user metadata subscribe + SetUserMetadata (majorRev -1, recordAuthor, recordTs); a failed
// client reports on errChan and is recreated.
func TestErrorHandlingFlow(t *testing.T) {
	w := where{name: "rtm2 serve", endpoint: certServer(t).endpoint, tokens: true}
	uid := uniq("uid")
	ctx, cancel := context.WithCancel(context.Background())
	errChan := make(chan error, 10)
	client := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: uid, Endpoint: w.endpoint}, errChan)
	defer func() { cancel(); waitFreed(t, client) }()
	// A token of 4 s: the server's notice (2 s before expiry) comes in about 2 s.
	conn, tc, _, err := client.Login(w.token(t, uid, 4))
	if err != nil {
		t.Fatal(err)
	}
	e := recvWhere(t, conn, "connection events", func(e *ConnectionEvent) bool { return e.State == ConnectionStateCONNECTED })
	if e.Reason != ConnectionChangedReasonLoginSuccess {
		t.Fatalf("connected with reason %d", e.Reason)
	}
	if ch := recv(t, tc, "token events"); ch != "" {
		t.Fatalf("the login token's notice names channel %q", ch)
	}
	if err := client.RenewToken(w.token(t, uid, 600)); err != nil {
		t.Fatal(err)
	}
	snap, c, err := client.Storage().SubscribeUserMetadata(uid)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != 0 {
		t.Fatalf("snapshot %v", snap)
	}
	for cnt := 0; cnt < 3; cnt++ {
		data := map[string]*MetadataItem{"name": {Key: "name", Value: fmt.Sprintf("%s%d", uid, cnt), Revision: -1}}
		if err := client.Storage().SetUserMetadata(uid, data, WithStorageMajorRev(-1), WithStorageRecordAuthor(true),
			WithStorageRecordTs(true)); err != nil {
			t.Fatal(err)
		}
		ev := recv(t, c, "user metadata events")
		item := ev.Items["name"]
		if ev.EventType != StorageTypeSet && ev.EventType != StorageTypeUpdate || item == nil ||
			item.Value != fmt.Sprintf("%s%d", uid, cnt) || item.Author != uid || item.UpdateTs == 0 {
			t.Fatalf("event %+v item %+v", ev, item)
		}
	}
	// Past the old token's expiry the renewed session stays up.
	time.Sleep(2500 * time.Millisecond)
	if _, _, err := client.Storage().GetUserMetadata(uid); err != nil {
		t.Fatalf("after the first token expired: %v", err)
	}
	// The same user id logging in elsewhere: FAILED on the connection events and errChan.
	other, _ := newClient(t, w, uid)
	if _, _, _, err := other.Login(w.token(t, uid, 600)); err != nil {
		t.Fatal(err)
	}
	f := recvWhere(t, conn, "connection events", func(e *ConnectionEvent) bool { return e.State == ConnectionStateFAILED })
	if f.Reason != ConnectionChangedReasonSameUidLogin {
		t.Fatalf("FAILED with reason %d", f.Reason)
	}
	failed := recv(t, errChan, "errChan").(*ConnectionFailedError)
	if failed.Reason != ConnectionChangedReasonSameUidLogin || failed.Text == "" {
		t.Fatalf("errChan got %+v", failed)
	}
	// The seed's recovery: logout, cancel, recreate.
	_ = client.Logout()
	cancel()
	waitFreed(t, client)
	expectCode(t, client.Publish("x", []byte("y")), ERROR_INSTANCE_ALREADY_RELEASED)
}

func sorted(m map[string]*UserState) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
