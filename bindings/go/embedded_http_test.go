package rtm2

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// embeddedHTTPPortEnv names the port of the embedded server's HTTP side; set only in the child
// process TestEmbeddedHTTP starts.
const embeddedHTTPPortEnv = "RTM2_TEST_EMBEDDED_HTTP_PORT"

// TestEmbeddedHTTP: the embedded server serves its HTTP side where RTM2_EMBEDDED_HTTP says,
// with the Basic credentials of RTM2_EMBEDDED_HTTP_AUTH. The embedded server is one per process
// and reads the environment when it starts (the first client of the process starts it), so the
// check runs in a child process (TestEmbeddedHTTPChild) with the environment set.
func TestEmbeddedHTTP(t *testing.T) {
	if os.Getenv(embeddedHTTPPortEnv) != "" {
		t.Skip("this process is the child of TestEmbeddedHTTP (TestEmbeddedHTTPChild)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEmbeddedHTTPChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(),
		"RTM2_ENDPOINT=", // the embedded default
		fmt.Sprintf("RTM2_EMBEDDED_HTTP=127.0.0.1:%d", port),
		"RTM2_EMBEDDED_HTTP_AUTH=ops:secret",
		fmt.Sprintf("%s=%d", embeddedHTTPPortEnv, port),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child failed (%v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestEmbeddedHTTPChild") {
		t.Fatalf("the child did not pass:\n%s", out)
	}
}

// TestEmbeddedHTTPChild runs only as the child of TestEmbeddedHTTP: "alice" logs in on the
// embedded default, then the REST API (with and without the credentials) and /metrics.
func TestEmbeddedHTTPChild(t *testing.T) {
	p := os.Getenv(embeddedHTTPPortEnv)
	if p == "" {
		t.Skip("runs only as a child process of TestEmbeddedHTTP")
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	loggedIn(t, where{name: "embedded"}, "alice")

	// Straight to the loopback port (no proxy from the environment); every request bounded.
	hc := &http.Client{Timeout: wait, Transport: &http.Transport{Proxy: nil}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(path string, auth bool) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.SetBasicAuth("ops", "secret")
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return res.StatusCode, string(body)
	}

	usersPath := "/v1/apps/" + appID + "/users"
	status, body := get(usersPath, true)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", usersPath, status, body)
	}
	var got interface{}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET %s: not JSON (%v): %s", usersPath, err, body)
	}
	want := map[string]interface{}{
		"count": float64(1),
		"users": []interface{}{map[string]interface{}{"user_id": "alice", "node_id": ""}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GET %s: %s, want %v", usersPath, body, want)
	}

	if status, body := get(usersPath, false); status != 401 {
		t.Fatalf("GET %s without credentials: %d %s, want 401", usersPath, status, body)
	}

	status, metrics := get("/metrics", false)
	if status != 200 {
		t.Fatalf("GET /metrics: %d %s", status, metrics)
	}
	found := false
	for _, line := range strings.Split(metrics, "\n") {
		if line == `rtm2_logins_total{result="ok"} 1` {
			found = true
		}
	}
	if !found {
		t.Fatalf("GET /metrics: no line %s in:\n%s", `rtm2_logins_total{result="ok"} 1`, metrics)
	}
}
