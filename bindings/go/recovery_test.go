package rtm2

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A reconnect that cannot resume, here because the server restarted (docs/RELIABILITY.md):
// the stored messages published while the client was away (by a server on the same data
// directory elsewhere) come from the channel's history, Recovered, oldest first, after the
// CONNECTED event, which is not resumed and names the channel (a restarted server cannot
// vouch for the gap); live messages afterwards are not Recovered. The CONNECTED event's
// details, which ConnectionEvent has no room for, are read from the client's debug log.
func TestStoredMessagesMissedAcrossAServerRestartAreRecovered(t *testing.T) {
	flags := []string{"--data-dir", t.TempDir(), "--no-rate-limits"}
	s1, err := cfStartServe(t, "127.0.0.1:0", flags)
	if err != nil {
		t.Fatal(err)
	}
	w := where{name: "rtm2 serve", endpoint: s1.endpoint()}

	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	alice := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: "alice", Endpoint: w.endpoint,
		RequestTimeout: 5000, Logger: zap.New(core)}, make(chan error, 10))
	t.Cleanup(func() {
		cancel()
		waitFreed(t, alice)
	})
	// Back soon after the restart.
	if err := alice.SetParameters(map[string]interface{}{"reconnect_initial_backoff_ms": 20, "reconnect_max_backoff_ms": 200}); err != nil {
		t.Fatal(err)
	}
	events, _, _, err := alice.Login("")
	if err != nil {
		t.Fatalf("login alice: %v", err)
	}
	msgs := subscribed(t, alice, "room")
	bob, _, _, _ := loggedIn(t, w, "bob")
	publishText(t, bob, "room", "before", WithMessageStoreInHistory(true))
	if m := recv(t, msgs, "the message before"); string(m.Message) != "before" || m.Recovered {
		t.Fatalf("before the restart: %q recovered %v, want \"before\" not recovered", m.Message, m.Recovered)
	}

	s1.proc.kill()
	recvWhere(t, events, "RECONNECTING (disconnected)", func(e *ConnectionEvent) bool {
		return e.State == ConnectionStateRECONNECTING
	})

	// Meanwhile another server on the same data directory stores what alice misses (one
	// server at a time opens the directory).
	s2, err := cfStartServe(t, "127.0.0.1:0", flags)
	if err != nil {
		t.Fatal(err)
	}
	carol, _, _, _ := loggedIn(t, where{name: "elsewhere", endpoint: s2.endpoint()}, "carol")
	for i := 0; i < 5; i++ {
		publishText(t, carol, "room", fmt.Sprintf("while away %d", i), WithMessageStoreInHistory(true))
	}
	if err := carol.Logout(); err != nil {
		t.Fatal(err)
	}
	s2.proc.kill()
	select {
	case m := <-msgs:
		t.Fatalf("a message while alice was away: %q", m.Message)
	default:
	}
	seen := logs.Len()

	// The server is back at alice's address: she reconnects by herself.
	if _, err := s1.restart(t); err != nil {
		t.Fatal(err)
	}
	first := recv(t, msgs, "the first recovered message")
	// The dispatcher logs the CONNECTED event before it hands on any later message.
	connected := connectedEntries(logs.All()[seen:])
	if len(connected) == 0 {
		t.Fatal("a message reached alice before the CONNECTED event after the restart")
	}
	l := connected[0]
	if resumed, _ := l["is_resumed"].(bool); resumed {
		t.Fatalf("CONNECTED after a restart is_resumed: %v", l)
	}
	if got := fmt.Sprint(l["affected_channels"]); got != "[room]" {
		t.Fatalf("CONNECTED after a restart: affected_channels %s, want [room] (a restarted server cannot vouch for the gap)", got)
	}
	recvWhere(t, events, "CONNECTED after the restart", func(e *ConnectionEvent) bool {
		return e.State == ConnectionStateCONNECTED
	})

	for i := 0; i < 5; i++ {
		m := first
		if i > 0 {
			m = recv(t, msgs, "recovered messages")
		}
		if want := fmt.Sprintf("while away %d", i); string(m.Message) != want || !m.Recovered || m.UserId != "carol" {
			t.Fatalf("recovered message %d: %q from %s recovered %v, want %q from carol recovered", i, m.Message, m.UserId, m.Recovered, want)
		}
	}
	dave, _, _, _ := loggedIn(t, w, "dave")
	publishText(t, dave, "room", "after")
	if m := recv(t, msgs, "the message after"); string(m.Message) != "after" || m.Recovered {
		t.Fatalf("after the recovery: %q recovered %v, want \"after\" not recovered", m.Message, m.Recovered)
	}
}

// connectedEntries: the context of each logged CONNECTED connection event among entries.
func connectedEntries(entries []observer.LoggedEntry) []map[string]interface{} {
	var out []map[string]interface{}
	for _, e := range entries {
		if e.Message != "rtm2: connection state" {
			continue
		}
		if f := e.ContextMap(); f["state"] == int32(ConnectionStateCONNECTED) {
			out = append(out, f)
		}
	}
	return out
}
