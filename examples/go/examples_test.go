// Package examples holds the Go examples' test: it builds every program of cmd/ and runs it
// against the embedded server and against `rtm2 serve` with tokens, and checks what it prints,
// so that the examples cannot rot.
//
//	cd examples/go && CGO_LDFLAGS=-L../../target/debug go test -count=1 ./...
//
// Without CGO_LDFLAGS the programs are linked against the checkout's target/debug/librtm2.a.
// The server binary is RTM2_BIN, else the checkout's target/debug/rtm2.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	appID = "970CA35de60c44645bbae8a215061b33"
	cert  = "5CFd2fd1755d40ecb72977518be15d3b"
	// runLimit bounds every run of a program (they end by themselves well before).
	runLimit = 60 * time.Second
)

// bin is the directory of the built programs.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rtm2-go-examples")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building the examples:", err)
	} else {
		bin = dir
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles ./cmd/... into dir.
func build(dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Env = os.Environ()
	if os.Getenv("CGO_LDFLAGS") == "" {
		lib, _ := filepath.Abs("../../target/debug")
		cmd.Env = append(cmd.Env, "CGO_LDFLAGS=-L"+lib)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// run runs a built program with args; it must exit with status 0 by itself.
func run(t *testing.T, program string, args ...string) string {
	t.Helper()
	out, err := runStatus(t, program, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
	return out
}

// runStatus runs a built program with args and returns its output (stdout and stderr) and
// its exit error; a program still running after runLimit is killed and fails the test.
func runStatus(t *testing.T, program string, args ...string) (string, error) {
	t.Helper()
	out, err, hung := execute(program, args...)
	if hung {
		t.Fatalf("%s did not exit within %s:\n%s", program, runLimit, out)
	}
	return out, err
}

// execute runs a built program with args (killed after runLimit: hung).
func execute(program string, args ...string) (out string, err error, hung bool) {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, program), args...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err = cmd.Run()
	return buf.String(), err, ctx.Err() != nil
}

// expect checks that out has a line matching each pattern, in that order.
func expect(t *testing.T, out string, patterns ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("no line matching %q (in this order) in the output:\n%s", p, out)
		}
		i++
	}
}

// once checks that exactly one line of out matches pattern.
func once(t *testing.T, out, pattern string) {
	t.Helper()
	if n := count(out, pattern); n != 1 {
		t.Fatalf("%d lines match %q, want 1; the output:\n%s", n, pattern, out)
	}
}

// count is how many lines of out match pattern.
func count(out, pattern string) int {
	re := regexp.MustCompile(pattern)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// certServer starts `rtm2 serve` with an app certificate on a loopback port (tokens required,
// "token will expire" 2 s before expiry); it is stopped when the test ends. It returns the
// flags that point a program at it.
func certServer(t *testing.T) []string {
	t.Helper()
	rtm2 := os.Getenv("RTM2_BIN")
	if rtm2 == "" {
		rtm2, _ = filepath.Abs("../../target/debug/rtm2")
	}
	if _, err := os.Stat(rtm2); err != nil {
		t.Fatalf("rtm2 binary not found at %s: build it (cargo build -p rtm2-cli) or set RTM2_BIN", rtm2)
	}
	cmd := exec.Command(rtm2, "serve", "--listen", "127.0.0.1:0", "--no-rate-limits",
		"--app-id", appID, "--app-certificate", cert, "--token-notice-secs", "2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`rtm2 server listening on (\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return []string{"-endpoint", "tcp://" + a, "-appid", appID, "-cert", cert}
	case <-time.After(10 * time.Second):
		t.Fatal("rtm2 serve did not print its address")
	}
	return nil
}

// places: the embedded server (no flags) and `rtm2 serve` with tokens.
func places(t *testing.T) map[string][]string {
	return map[string][]string{"embedded": nil, "rtm2 serve": certServer(t)}
}

func TestStream(t *testing.T) {
	for name, flags := range places(t) {
		t.Run(name, func(t *testing.T) {
			out := run(t, "stream", flags...)
			expect(t, out,
				`^alice logged in$`,
				`^alice joined MyChannel \(topics: map\[\]\)$`,
				`^alice joined topic MyTopic$`,
				`^bob logged in$`,
				`^bob joined MyChannel \(topics: map\[MyTopic:\[alice\]\]\)$`,
				`^bob received from alice: "Hello world!\\x00"$`,
				`^bob is subscribed in MyTopic to \[alice\]$`,
				`^bob unsubscribed from alice in MyTopic$`,
				`^both left MyChannel$`,
				`^both logged out$`,
				`^done$`)
		})
	}
}

func TestP2P(t *testing.T) {
	for name, flags := range places(t) {
		t.Run(name, func(t *testing.T) {
			out := run(t, "p2p", append(flags, "-interval", "100ms", "-messages", "3")...)
			// Printed by three goroutines: each line on its own, not their order.
			for i := 0; i < 3; i++ {
				once(t, out, fmt.Sprintf(`^local sent to remote: message-p2p-message-%d$`, i))
				once(t, out, fmt.Sprintf(`^remote received from local: message-p2p-message-%d$`, i))
				once(t, out, fmt.Sprintf(`^local received from remote: answer-to-message-p2p-message-%d$`, i))
			}
			expect(t, out, `^done$`)
		})
	}
	// A remote user id nobody uses: every publish is 11033, and the program gives up.
	t.Run("offline", func(t *testing.T) {
		out, err := runStatus(t, "p2p", "-serve-remote=false", "-remote", "nobody", "-messages", "1",
			"-interval", "100ms", "-duration", "1s")
		if err == nil {
			t.Fatalf("p2p to an offline user succeeded:\n%s", out)
		}
		if count(out, `^nobody is offline \(11033: ERROR_CHANNEL_RECEIVER_OFFLINE\); trying again$`) == 0 {
			t.Fatalf("no 11033 in the output:\n%s", out)
		}
		expect(t, out, `0 of 1 messages answered within 1s`)
	})
	// Two p2p processes against one server, each the other's remote user.
	t.Run("two processes", func(t *testing.T) {
		flags := certServer(t)
		p2p := func(user, remote string) (string, error, bool) {
			return execute("p2p", append(flags, "-serve-remote=false", "-user", user, "-remote", remote,
				"-interval", "100ms", "-messages", "2")...)
		}
		type result struct {
			out  string
			err  error
			hung bool
		}
		done := make(chan result, 1)
		go func() {
			out, err, hung := p2p("anna", "ben")
			done <- result{out, err, hung}
		}()
		ben, err, hung := p2p("ben", "anna")
		anna := <-done
		if err != nil || hung || anna.err != nil || anna.hung {
			t.Fatalf("ben: %v (hung: %t)\n%s\nanna: %v (hung: %t)\n%s", err, hung, ben, anna.err, anna.hung, anna.out)
		}
		expect(t, ben, `^ben received from anna: answer-to-message-p2p-message-1$`, `^done$`)
		expect(t, anna.out, `^anna received from ben: answer-to-message-p2p-message-1$`, `^done$`)
	})
}

func TestRecover(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		out := run(t, "recover", "-interval", "100ms", "-writes", "2", "-rounds", "3")
		for round := 1; round <= 3; round++ {
			expect(t, out,
				fmt.Sprintf(`^round %d: logged in$`, round),
				fmt.Sprintf(`^round %d: set user metadata uid0$`, round),
				fmt.Sprintf(`^round %d: set user metadata uid1$`, round))
			once(t, out, fmt.Sprintf(`^round %d: connection state CONNECTED, reason 10001$`, round))
			for i := 0; i < 2; i++ {
				once(t, out, fmt.Sprintf(`^round %d: user metadata event (SET|UPDATE): name=uid%d author=uid recorded=true$`, round, i))
			}
		}
		// Rounds 1 and 2 end with the same user id logging in elsewhere: FAILED on the connection
		// events and on errChan (two Go channels: the program reacts to whichever it reads
		// first), then a new client.
		for round := 1; round <= 2; round++ {
			once(t, out, fmt.Sprintf(`^round %d: uid logged in elsewhere$`, round))
			failedFirst := fmt.Sprintf(`^round %d: connection state FAILED, reason 19$`, round)
			if count(out, failedFirst) == 1 {
				expect(t, out, failedFirst,
					fmt.Sprintf(`^round %d: errChan: rtm2: the connection failed \(reason 19\): .+$`, round))
			} else {
				once(t, out, fmt.Sprintf(`^round %d: error from errChan, recreating the client: rtm2: the connection failed \(reason 19\): .+$`, round))
			}
			expect(t, out,
				fmt.Sprintf(`^round %d: the client is gone$`, round),
				fmt.Sprintf(`^round %d: logged in$`, round+1))
		}
		expect(t, out, `^done after 3 rounds$`)
		if n := count(out, `reason 19`); n < 2 || n > 4 {
			t.Fatalf("%d reports of the takeover (reason 19), want one or two per round of 2:\n%s", n, out)
		}
	})
	// Tokens of 4 s, the notice 2 s before expiry: every round renews its login token and
	// keeps working past the first token's expiry (10 writes, 500 ms apart).
	t.Run("rtm2 serve", func(t *testing.T) {
		out := run(t, "recover", append(certServer(t), "-token-secs", "4", "-interval", "500ms", "-writes", "10")...)
		for round := 1; round <= 2; round++ {
			expect(t, out,
				fmt.Sprintf(`^round %d: token will expire \(channel ""\)$`, round),
				fmt.Sprintf(`^round %d: renewed the login token$`, round))
			expect(t, out, fmt.Sprintf(`^round %d: logged in$`, round), fmt.Sprintf(`^round %d: set user metadata uid9$`, round))
			once(t, out, fmt.Sprintf(`^round %d: user metadata event (SET|UPDATE): name=uid9 author=uid recorded=true$`, round))
		}
		expect(t, out, `^round 1: uid logged in elsewhere$`, `^round 2: logged in$`, `^done after 2 rounds$`)
		if count(out, `^round 1: connection state FAILED, reason 19$`)+
			count(out, `^round 1: error from errChan, recreating the client: rtm2: the connection failed \(reason 19\): .+$`) != 1 {
			t.Fatalf("round 1 did not end with the takeover (FAILED, reason 19):\n%s", out)
		}
		if strings.Contains(out, "renew token failed") || strings.Contains(out, "set user metadata failed") {
			t.Fatalf("an operation failed:\n%s", out)
		}
	})
}
