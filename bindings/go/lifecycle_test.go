package rtm2

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// No goroutine is left behind by a client after Logout and the cancellation of its context,
// whatever it did (subscriptions, a stream channel, a pending retrying acquisition).
func TestNoGoroutineLeak(t *testing.T) {
	// Warm up once (the library's runtime and the embedded server start with the first client).
	warm, _, _, _ := loggedIn(t, embedded, uniq("warm"))
	_ = warm.Logout()
	before := goroutines()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		c := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: uniq("leak")}, errs)
		if _, _, _, err := c.Login(""); err != nil {
			t.Fatal(err)
		}
		ch := uniq("leak")
		if _, err := c.Subscribe(ch, WithMessageLock(true), WithMessageMetadata(true)); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := c.StreamChannel(ch).Join(WithStreamPresence(true)); err != nil {
			t.Fatal(err)
		}
		if err := c.Lock().Set(ch, ChannelTypeMessage, "l", 10); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, c.Lock().Acquire(ch, ChannelTypeMessage, "l", false), "acquire"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := c.Logout(); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		waitFreed(t, c)
	}
	if after := goroutines(); after > before {
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after, stack())
	}
}

// Cancelling the context logs the client out (others see it leave at once, not after its
// presence timeout) and frees it: every later call fails with 10018.
func TestContextCancellationLogsOutAndFrees(t *testing.T) {
	watcher, _, _, _ := loggedIn(t, embedded, uniq("watcher"))
	room := uniq("room")
	if _, err := watcher.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	_, events, err := watcher.Presence().GetPresenceChan(room, ChannelTypeMessage)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	goneID := uniq("gone")
	gone := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: goneID, PresenceTimeout: 300}, nil)
	if _, _, _, err := gone.Login(""); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	recvWhere(t, events, "presence events", func(e *PresenceEvent) bool { return e.Type == PresenceTypeJoinChannel && e.UserId == goneID })
	cancel()
	e := recvWhere(t, events, "presence events", func(e *PresenceEvent) bool { return e.UserId == goneID })
	if e.Type != PresenceTypeLeaveChannel {
		t.Fatalf("after cancel: %+v (want a leave, not a timeout 300 s later)", e)
	}
	waitFreed(t, gone)
	expectCode(t, gone.Publish(room, []byte("x")), ERROR_INSTANCE_ALREADY_RELEASED)
	_, _, _, err = gone.Login("")
	expectCode(t, err, ERROR_INSTANCE_ALREADY_RELEASED)
	if gone.GetParameters() != nil {
		t.Fatal("parameters of a freed client")
	}
}

// LogoutAll logs out every client of the process still logged in, and each stays usable
// (logged out: it can log in again).
func TestLogoutAllLogsEveryClientOut(t *testing.T) {
	loggedIn(t, embedded, uniq("other"))
	gone, _, _, _ := loggedIn(t, embedded, uniq("gone"))
	room := uniq("room")
	if _, err := gone.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	if n := LogoutAll(2 * time.Second); n < 2 {
		t.Fatalf("LogoutAll waited for %d logouts, want at least 2", n)
	}
	expectCode(t, gone.Publish(room, []byte("x")), ERROR_NOT_LOGIN)
	if _, _, _, err := gone.Login(""); err != nil {
		t.Fatalf("login again after LogoutAll: %v", err)
	}
}

// A reader that falls behind never stalls the SDK: once RTMConfig.EventBuffer events wait for a
// Go channel's reader (beyond the channel's own outboxChan), new ones are dropped and counted;
// the client and its other channels keep working, and what was kept arrives in order.
func TestAFullChannelDropsAndCounts(t *testing.T) {
	const buffer, extra = 300, 50
	ctx, cancel := context.WithCancel(context.Background())
	reader := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: uniq("slow"), EventBuffer: buffer}, nil)
	defer func() { cancel(); waitFreed(t, reader) }()
	if _, _, _, err := reader.Login(""); err != nil {
		t.Fatal(err)
	}
	writer, _, _, _ := loggedIn(t, embedded, uniq("fast"))
	flood, other := uniq("flood"), uniq("other")
	msgs, err := reader.Subscribe(flood)
	if err != nil {
		t.Fatal(err)
	}
	others, err := reader.Subscribe(other)
	if err != nil {
		t.Fatal(err)
	}
	kept := buffer + outboxChan
	for i := 0; i < kept+extra; i++ {
		if err := writer.Publish(flood, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The SDK keeps delivering: a message on another channel arrives while flood is full.
	if err := writer.Publish(other, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, others, "other channel"); string(m.Message) != "still here" {
		t.Fatalf("got %q", m.Message)
	}
	if d := DroppedEvents(reader); d != extra {
		t.Fatalf("%d events dropped, want %d", d, extra)
	}
	// What was kept is the first messages, in order.
	for i := 0; i < kept; i++ {
		if m := recv(t, msgs, "flood"); string(m.Message) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Message)
		}
	}
	quiet(t, msgs, 50*time.Millisecond, "message beyond the buffer")
	// A reader that keeps up loses nothing.
	read := make(chan error, 1)
	go func() {
		for i := 0; i < 5000; i++ {
			select {
			case m := <-msgs:
				if string(m.Message) != fmt.Sprint(i) {
					read <- fmt.Errorf("message %d is %q", i, m.Message)
					return
				}
			case <-time.After(wait):
				read <- fmt.Errorf("message %d did not come", i)
				return
			}
		}
		read <- nil
	}()
	for i := 0; i < 5000; i++ {
		if err := writer.Publish(flood, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := recv(t, read, "the reader's outcome"); err != nil {
		t.Fatal(err)
	}
	if d := DroppedEvents(reader); d != extra {
		t.Fatalf("%d events dropped after, want still %d", d, extra)
	}
}

// A configuration that cannot work fails at once: errChan hears it and every call returns it.
func TestBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RTMConfig
		want error
	}{
		{"no app id", RTMConfig{UserId: "u"}, ERROR_INVALID_APP_ID},
		{"bad user id", RTMConfig{Appid: appID, UserId: "a b/c"}, ERROR_INVALID_USER_ID},
		{"port out of range", RTMConfig{Appid: appID, UserId: "u", Endpoint: "tcp://127.0.0.1:99999"}, ERROR_INVALID_PARAMETER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 1)
			c := CreateRTM2Client(context.Background(), tc.cfg, errs)
			expectCode(t, recv(t, errs, "errChan"), tc.want)
			_, _, _, err := c.Login("")
			expectCode(t, err, tc.want)
			expectCode(t, c.Publish("x", []byte("y")), tc.want)
			expectCode(t, c.SetParameters(map[string]interface{}{"request_timeout_ms": 1000}), tc.want)
		})
	}
}

// The endpoint can be given with SetParameters before Login (as the seed sets its sidecar's),
// not after; unknown keys are refused; GetParameters reads back what is in effect.
func TestParametersAndEndpoint(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	user := uniq("param")
	c := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: user}, nil)
	defer func() { cancel(); waitFreed(t, c) }()
	if p := c.GetParameters(); p["endpoint"] != "" {
		t.Fatalf("parameters before Login %v", p)
	}
	expectCode(t, c.SetParameters(map[string]interface{}{"endpoint": "tcp://127.0.0.1:0"}), ERROR_INVALID_PARAMETER)
	expectCode(t, c.SetParameters(map[string]interface{}{"golang_sidecar_port": 9000}), ERROR_INVALID_PARAMETER)
	if err := c.SetParameters(map[string]interface{}{"endpoint": srv.endpoint, "heartbeat_interval_s": 7}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Login(""); err != nil {
		t.Fatal(err)
	}
	p := c.GetParameters()
	if p["endpoint"] != srv.endpoint || p["heartbeat_interval_s"] != float64(7) {
		t.Fatalf("parameters %v", p)
	}
	// It is on that server: a client of the server sees it.
	room := uniq("room")
	if _, err := c.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	other, _, _, _ := loggedIn(t, where{name: "serve", endpoint: srv.endpoint}, uniq("other"))
	users, _, err := other.Presence().WhoNow(room, ChannelTypeMessage)
	if err != nil || users[user] == nil {
		t.Fatalf("who now on the server: %v %v", users, err)
	}
	expectCode(t, c.SetParameters(map[string]interface{}{"endpoint": "embedded"}), ERROR_INVALID_PARAMETER)
	if err := c.SetParameters(map[string]interface{}{"request_timeout_ms": 2000}); err != nil {
		t.Fatal(err)
	}
	if c.GetParameters()["request_timeout_ms"] != float64(2000) {
		t.Fatal("request_timeout_ms not in effect")
	}
	expectCode(t, c.SetParameters(map[string]interface{}{"request_timeout_ms": "soon"}), ERROR_INVALID_PARAMETER)
}

// A client given no endpoint uses the RTM2_ENDPOINT environment variable (read by the core when
// the client is made); an invalid value fails with ERROR_INVALID_PARAMETER.
func TestDefaultEndpointHonoursRTM2_ENDPOINT(t *testing.T) {
	srv := startServer(t)
	room := uniq("env-room")
	watcher, _, _, _ := loggedIn(t, where{name: "serve", endpoint: srv.endpoint}, uniq("watcher"))
	if _, err := watcher.Subscribe(room); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RTM2_ENDPOINT", srv.endpoint)
	user := uniq("from-env")
	c, _ := newClient(t, where{name: "default"}, user)
	if _, _, _, err := c.Login(""); err != nil {
		t.Fatal(err)
	}
	users, _, err := c.Presence().WhoNow(room, ChannelTypeMessage)
	if err != nil || users[watcher.(*client).userID] == nil {
		t.Fatalf("who now from the RTM2_ENDPOINT client: %v %v", users, err)
	}
	t.Setenv("RTM2_ENDPOINT", "tcp:/nowhere")
	bad, _ := newClient(t, where{name: "default"}, uniq("bad-env"))
	_, _, _, err = bad.Login("")
	expectCode(t, err, ERROR_INVALID_PARAMETER)
}
