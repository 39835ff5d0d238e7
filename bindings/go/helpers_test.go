package rtm2

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	appID = "970CA35de60c44645bbae8a215061b33"
	cert  = "5CFd2fd1755d40ecb72977518be15d3b"
	wait  = 10 * time.Second
)

var uniqN atomic.Int64

// uniq is a name no other test uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), uniqN.Add(1))
}

// rtm2Bin is the rtm2 binary (RTM2_BIN, else the workspace's debug build).
func rtm2Bin(t *testing.T) string {
	if b := os.Getenv("RTM2_BIN"); b != "" {
		return b
	}
	b, _ := filepath.Abs("../../target/debug/rtm2")
	if _, err := os.Stat(b); err != nil {
		t.Fatalf("rtm2 binary not found at %s: build it (cargo build -p rtm2-cli) or set RTM2_BIN", b)
	}
	return b
}

// server is an `rtm2 serve` process on a loopback port.
type server struct {
	endpoint string
	cmd      *exec.Cmd
}

// startServer starts `rtm2 serve --listen 127.0.0.1:0 --no-rate-limits args...`; it is stopped
// (by pid) when the test ends.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(rtm2Bin(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--no-rate-limits"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`rtm2 server listening on (\S+)`)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
	}()
	select {
	case a := <-addr:
		return &server{endpoint: "tcp://" + a, cmd: cmd}
	case <-time.After(wait):
		t.Fatal("rtm2 serve did not print its address")
	}
	return nil
}

// certServer is a server with an app certificate (tokens required; will-expire notice 2 s).
func certServer(t *testing.T) *server {
	return startServer(t, "--app-id", appID, "--app-certificate", cert, "--token-notice-secs", "2")
}

// where is a place the flows run against: the embedded server or `rtm2 serve` with tokens.
type where struct {
	name     string
	endpoint string
	tokens   bool
}

func places(t *testing.T) []where {
	return []where{{name: "embedded"}, {name: "rtm2 serve", endpoint: certServer(t).endpoint, tokens: true}}
}

func (w where) token(t *testing.T, user string, secs uint32) string {
	if !w.tokens {
		return ""
	}
	tok, err := BuildToken(appID, cert, user, secs)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newClient makes a client of w (freed when the test ends) and its errChan.
func newClient(t *testing.T, w where, user string) (RTMClient, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 10)
	c := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: user, Endpoint: w.endpoint, RequestTimeout: 5000}, errs)
	t.Cleanup(func() {
		cancel()
		waitFreed(t, c)
	})
	return c, errs
}

// loggedIn is newClient + Login.
func loggedIn(t *testing.T, w where, user string) (RTMClient, <-chan *ConnectionEvent, <-chan string, <-chan *Message) {
	t.Helper()
	c, _ := newClient(t, w, user)
	ev, tok, p2p, err := c.Login(w.token(t, user, 3600))
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c, ev, tok, p2p
}

// waitFreed waits until the client's cancellation logged it out and freed it.
func waitFreed(t *testing.T, c RTMClient) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		c.(*client).life.RLock()
		closed := c.(*client).closed || c.(*client).cfgErr != nil
		c.(*client).life.RUnlock()
		if closed {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("the client was not freed after its context was cancelled")
}

// recv receives one value from ch within the wait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing on %s within %s", what, wait)
	}
	var zero T
	return zero
}

// recvWhere receives from ch until ok(v), within the wait.
func recvWhere[T any](t *testing.T, ch <-chan T, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-deadline:
			t.Fatalf("no matching %s within %s", what, wait)
		}
	}
}

// quiet asserts that nothing arrives on ch for d.
func quiet[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(d):
	}
}

func expectCode(t *testing.T, err error, want error) {
	t.Helper()
	if err != want {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// goroutines counts the goroutines (after letting finished ones exit).
func goroutines() int {
	for i := 0; i < 10; i++ {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

func stack() string {
	buf := make([]byte, 1<<16)
	return strings.TrimSpace(string(buf[:runtime.Stack(buf, true)]))
}
