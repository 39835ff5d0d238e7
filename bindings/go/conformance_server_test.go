package rtm2

// The processes a conformance scenario needs: `rtm2 serve` with the scenario's flags (also
// restarted on the same port) and ghosts (`rtm2 subscribe` processes killed with SIGKILL).

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cfRebind is how long `server restart` keeps trying to listen on the old port again.
const cfRebind = 5 * time.Second

// cfProc is a child process whose stderr lines are watched.
type cfProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled on every new line and at EOF
	eof   bool
	once  sync.Once
}

func cfSpawn(t *testing.T, args ...string) (*cfProc, error) {
	cmd := exec.Command(rtm2Bin(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &cfProc{cmd: cmd, more: make(chan struct{}, 1)}
	t.Cleanup(p.kill)
	go p.read(stderr)
	return p, nil
}

func (p *cfProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.mu.Unlock()
		p.signal()
	}
	p.mu.Lock()
	p.eof = true
	p.mu.Unlock()
	p.signal()
}

func (p *cfProc) signal() {
	select {
	case p.more <- struct{}{}:
	default:
	}
}

// waitLine waits (at most d) for a stderr line matching re; it returns the submatches.
func (p *cfProc) waitLine(re *regexp.Regexp, d time.Duration) ([]string, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m, nil
			}
		}
		eof, tail := p.eof, strings.Join(p.lines, "\n")
		p.mu.Unlock()
		if eof {
			return nil, fmt.Errorf("the process ended without %q; its stderr:\n%s", re, tail)
		}
		select {
		case <-p.more:
		case <-deadline.C:
			return nil, fmt.Errorf("no %q within %s; stderr so far:\n%s", re, d, tail)
		}
	}
}

// kill sends SIGKILL (to this process only, by its pid) and reaps it.
func (p *cfProc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

var cfListening = regexp.MustCompile(`rtm2 server listening on (\S+)`)

// cfServe is `rtm2 serve --listen LISTEN flags...` on loopback (a helper of its own, as the
// scenarios need flags startServer does not take: rate limits on, ttl unit, presence tuning).
type cfServe struct {
	proc  *cfProc
	addr  string // host:port
	flags []string
}

func cfStartServe(t *testing.T, listen string, flags []string) (*cfServe, error) {
	p, err := cfSpawn(t, append([]string{"serve", "--listen", listen}, flags...)...)
	if err != nil {
		return nil, err
	}
	m, err := p.waitLine(cfListening, wait)
	if err != nil {
		p.kill()
		return nil, err
	}
	return &cfServe{proc: p, addr: m[1], flags: flags}, nil
}

func (s *cfServe) endpoint() string { return "tcp://" + s.addr }

// restart kills the server and starts a new one with the same flags on the same port.
func (s *cfServe) restart(t *testing.T) (*cfServe, error) {
	s.proc.kill()
	until := time.Now().Add(cfRebind)
	for {
		n, err := cfStartServe(t, s.addr, s.flags)
		if err == nil {
			return n, nil
		}
		if time.Now().After(until) {
			return nil, fmt.Errorf("could not listen on %s again: %v", s.addr, err)
		}
		// The old socket may linger for a moment: try again shortly (bounded by cfRebind).
		time.Sleep(25 * time.Millisecond)
	}
}

// cfStartGhost starts `rtm2 subscribe` as user name in channel (presence timeout 5 s),
// optionally acquiring lock of that message channel, and waits until it got there.
func cfStartGhost(t *testing.T, addr, name, channel, lock, token string) (*cfProc, error) {
	args := []string{"subscribe", "--endpoint", addr, "--app-id", appID, "--user-id", name, "--presence-timeout", "5"}
	if token != "" {
		args = append(args, "--token", token)
	}
	if lock != "" {
		args = append(args, "--acquire-lock", channel+":"+lock)
	}
	p, err := cfSpawn(t, append(args, channel)...)
	if err != nil {
		return nil, err
	}
	if _, err := p.waitLine(regexp.MustCompile(`subscribed to `+regexp.QuoteMeta(channel)), wait); err != nil {
		p.kill()
		return nil, err
	}
	if lock != "" {
		if _, err := p.waitLine(regexp.MustCompile(`acquired lock `+regexp.QuoteMeta(lock)), wait); err != nil {
			p.kill()
			return nil, err
		}
	}
	return p, nil
}
