package rtm2

import (
	"context"
	"net"
	"strings"
	"testing"
)

// deadEndpoint is a loopback endpoint nothing listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "tcp://" + addr
}

// Client failover (docs/CLUSTER.md, "Client failover"): RTMConfig.Endpoint and SetParameters
// take a comma-separated list; a bad entry is refused with 10014; the first reachable
// endpoint is used.
func TestEndpointListsAreCheckedAndADeadEndpointIsSkipped(t *testing.T) {
	errs := make(chan error, 1)
	bad := CreateRTM2Client(context.Background(), RTMConfig{Appid: appID, UserId: "u", Endpoint: "127.0.0.1:1,,127.0.0.1:2"}, errs)
	expectCode(t, recv(t, errs, "errChan"), ERROR_INVALID_PARAMETER)
	_, _, _, err := bad.Login("")
	expectCode(t, err, ERROR_INVALID_PARAMETER)

	srv := startServer(t)
	list := deadEndpoint(t) + "," + srv.endpoint
	c, _ := newClient(t, where{name: "list", endpoint: list}, uniq("listed"))
	if _, _, ok := ConnectedTo(c); ok {
		t.Fatal("ConnectedTo before the first connection")
	}
	if _, _, _, err := c.Login(""); err != nil {
		t.Fatalf("login with %s: %v", list, err)
	}
	if e, node, ok := ConnectedTo(c); !ok || e != srv.endpoint || node != "" {
		t.Fatalf("ConnectedTo = %q %q %v, want %q (the live endpoint, no cluster node)", e, node, ok, srv.endpoint)
	}

	viaParams, _ := newClient(t, where{name: "embedded"}, uniq("params"))
	expectCode(t, viaParams.SetParameters(map[string]interface{}{"endpoint": srv.endpoint + ",tcp://127.0.0.1:99999"}), ERROR_INVALID_PARAMETER)
	if err := viaParams.SetParameters(map[string]interface{}{"endpoint": list}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := viaParams.Login(""); err != nil {
		t.Fatalf("login with %s set by SetParameters: %v", list, err)
	}
}

// A client on the first of two servers moves to the second when the first dies, and its
// subscription works there.
func TestAClientWhoseServerDiesMovesToTheNextOne(t *testing.T) {
	a, b := startServer(t), startServer(t)
	room := uniq("room")
	c, events, _, _ := loggedIn(t, where{name: "list", endpoint: a.endpoint + "," + b.endpoint}, uniq("mover"))
	msgs, err := c.Subscribe(room)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _ := loggedIn(t, where{name: "b", endpoint: b.endpoint}, uniq("pub"))

	_ = a.cmd.Process.Kill() // the server dies (SIGKILL)
	recvWhere(t, events, "reconnecting", func(e *ConnectionEvent) bool { return e.State == ConnectionStateRECONNECTING })
	recvWhere(t, events, "connected on the second server", func(e *ConnectionEvent) bool { return e.State == ConnectionStateCONNECTED })
	if err := pub.Publish(room, []byte("on b"), WithMessageType(MessageTypeString)); err != nil {
		t.Fatal(err)
	}
	m := recvWhere(t, msgs, "the message on b", func(m *Message) bool { return strings.Contains(string(m.Message), "on b") })
	if m.UserId == "" {
		t.Fatalf("message without a publisher: %+v", m)
	}
}
