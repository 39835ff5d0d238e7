package rtm2

// Cluster mode of the conformance runner (tests/conformance/README.md, "Cluster mode"): every
// scenario against a fresh 3-node cluster started by tests/conformance/cluster.py (a
// nats-server and three `rtm2 serve --cluster` nodes, stopped by pid), the i-th client or ghost
// of the scenario on node i mod 3; `server restart` restarts every node.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cfClusterNodes is the number of nodes of cluster mode.
const cfClusterNodes = 3

// cfClusterPending: the scenarios that do not pass against a cluster yet, with the reason.
// They are skipped in cluster mode (and logged as such), never counted as passing. The same
// list in every runner.
var cfClusterPending = map[string]string{}

// cfNatsServer is the nats-server of cluster mode: RTM2_NATS_SERVER if set, else the
// repository's .venv-nats/bin/nats-server if it exists (scripts/install-nats); "" if neither.
func cfNatsServer() string {
	if b := os.Getenv("RTM2_NATS_SERVER"); b != "" {
		return b
	}
	b, _ := filepath.Abs("../../.venv-nats/bin/nats-server")
	if _, err := os.Stat(b); err == nil {
		return b
	}
	return ""
}

// lockedBuffer is the stderr of cluster.py: written by exec's copying goroutine, read (in an
// error message) while it may still be written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cfCluster is a running tests/conformance/cluster.py: its nodes' addresses (host:port).
type cfCluster struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *lockedBuffer
	nodes  []string
	next   int
	once   sync.Once
}

func cfStartCluster(t *testing.T, nats string, flags []string) (*cfCluster, error) {
	script, _ := filepath.Abs("../../tests/conformance/cluster.py")
	args := append([]string{script, "--nodes", fmt.Sprint(cfClusterNodes), "--"}, flags...)
	cmd := exec.Command("python3", args...)
	cmd.Env = append(os.Environ(), "RTM2_BIN="+rtm2Bin(t), "RTM2_NATS_SERVER="+nats)
	c := &cfCluster{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(c.stop)
	if err := c.waitReady(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitReady reads the `node ADDR` lines up to `ready` (cluster.py bounds the wait itself).
func (c *cfCluster) waitReady() error {
	c.nodes = nil
	for {
		line, err := c.out.ReadString('\n')
		line = strings.TrimSpace(line)
		if addr, ok := strings.CutPrefix(line, "node "); ok {
			c.nodes = append(c.nodes, addr)
		} else if line == "ready" {
			if len(c.nodes) != cfClusterNodes {
				return fmt.Errorf("cluster.py started %d nodes, not %d", len(c.nodes), cfClusterNodes)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("cluster.py ended before its nodes were ready: %v; its stderr:\n%s", err, c.stderr)
		}
	}
}

// nextNode is the address of the node of the next client or ghost: node i mod N for the i-th.
func (c *cfCluster) nextNode() string {
	a := c.nodes[c.next%len(c.nodes)]
	c.next++
	return a
}

// restart stops every node and starts it again on the same port, with the same NATS.
func (c *cfCluster) restart() error {
	if _, err := io.WriteString(c.stdin, "restart\n"); err != nil {
		return err
	}
	return c.waitReady()
}

// stop asks cluster.py to stop the nodes and NATS (by pid), and kills it if it does not end.
func (c *cfCluster) stop() {
	c.once.Do(func() {
		_, _ = io.WriteString(c.stdin, "stop\n")
		_ = c.stdin.Close()
		done := make(chan struct{})
		go func() {
			_ = c.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	})
}
