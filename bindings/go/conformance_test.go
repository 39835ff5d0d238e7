package rtm2

// The Go runner of the language-neutral conformance scenarios (tests/conformance/README.md;
// the other runners: rtm2-core/tests/conformance.rs, tests/c/conformance.c,
// bindings/python/tests/test_conformance.py, bindings/node/test/conformance.test.mjs).
//
//   go test -race -run Conformance ./...        (in bindings/go; RTM2_BIN names the rtm2 binary,
//                                                 RTM2_CONFORMANCE_DIR another scenario directory)
//
// Every scenario runs through the Go interface only (RTMClient, StreamChannel, Presence,
// Storage, Lock): TestConformance/<file>/serve against a fresh `rtm2 serve` on 127.0.0.1 (as
// the Python runner: every scenario), and TestConformance/<file>/embedded against the embedded
// server, in a child process of the test binary (one embedded server per process, as the C
// runner's --embedded) for the scenarios that need no standalone server — those with a
// certificate, rate limits, server options, a restart or ghosts are skipped there — and
// TestConformance/<file>/cluster against a fresh 3-node cluster (conformance_cluster_test.go;
// when a nats-server is there: RTM2_NATS_SERVER, else .venv-nats/bin/nats-server), except the
// scenarios of cfClusterPending, which are skipped there with their reason.
//
// Events: each Go channel a call hands out is forwarded into one queue per client, tagged with
// what that Go channel stands for (Subscribe's channel: its message channel; SubscribeTopic's:
// that topic; Login's third channel: peer-to-peer messages to this user; Get…Chan: that
// channel and type). Snapshots the Go API returns as values (Join, GetPresenceChan,
// GetChannelMetadataChan, GetLockChan, SubscribeUserMetadata) are queued as SNAPSHOT events.
// Messages from different Go channels are merged by forwarding goroutines, so the order of two
// messages of different channels (or topics) is the order in which they were forwarded.
// Expected link states are translated into the Go SDK's legacy connection states
// (cfLinkStateInGo, cfLinkReasonInGo).
//
// What the Go interface cannot express — skipped, each with its reason in the test log:
//
// Steps (cfInexpressible, detected from the step itself):
//   * 08-presence.scn:61, 10-storage.scn:36  a key given twice (13010 / 12013): SetState and
//     the metadata writes take Go maps, which cannot hold a key twice.
// (be_quiet=true maps onto the rtm2 additions WithMessageBeQuiet / WithStreamBeQuiet, and
// revision=0, "the item must not exist yet", onto RevisionAbsent.)
// Steps that depend on a skipped step: cfSkips (none today).
// Fields that are not compared (cfEvent.missing, notChecked):
//   * link_state service= and channel=: ConnectionEvent has only State and Reason (and the
//     connection channel also carries the stream channels' link states).
//   * topic_event meta=: TopicEvent and Join's snapshot carry no publisher meta.
//   * presence total=, who_now total=: PresenceEvent and WhoNow give no total occupancy.
//   * storage publisher=, and channel_type= of user metadata: StorageEvent has neither; the
//     first snapshot's major= : Get…Chan / SubscribeUserMetadata return the items only.
//   * lock publisher=: LockEvent has none.
//   * result_major= and total= of metadata writes: they return only an error.
//   * subscribe_topic succeeded=, and the user ids of failed=: SubscribeTopic returns the
//     message channel and the first failed user's code (checked) only.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// cfSkip is a step skipped because it depends on a step the Go interface cannot express.
type cfSkip struct{ text, reason string }

// cfSkips, by "file:line": the step's text (checked, so that an edited scenario cannot shift
// the table silently) and the reason.
var cfSkips = map[string]cfSkip{}

// cfEnvChild names the scenario a child process runs against the embedded server.
const cfEnvChild = "RTM2_CONFORMANCE_EMBEDDED"

func cfScenarioDir() (string, bool) {
	if d := os.Getenv("RTM2_CONFORMANCE_DIR"); d != "" {
		return d, false
	}
	d, _ := filepath.Abs("../../tests/conformance/scenarios")
	return d, true
}

func cfScenarioFiles(t *testing.T) []string {
	dir, _ := cfScenarioDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.scn"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func TestConformanceScenarioFiles(t *testing.T) {
	_, isDefault := cfScenarioDir()
	want := 1
	if isDefault {
		want = 12
	}
	if n := len(cfScenarioFiles(t)); n < want {
		t.Fatalf("%d scenario files, expected at least %d", n, want)
	}
}

func TestConformanceLineSyntax(t *testing.T) {
	w, err := cfWords(`a "b c" d="e \"f\"" \n`)
	if err != nil || fmt.Sprintf("%q", w) != `["a" "b c" "d=e \"f\"" "\\n"]` {
		t.Fatalf("words %q, %v", w, err)
	}
	if w, _ := cfWords(`x ""`); len(w) != 2 || w[1] != "" {
		t.Fatalf("an empty quoted word: %q", w)
	}
	w, _ = cfWords(`alice publish room "hi there" custom_type=size:3 -> error 11010`)
	s, err := cfParseStep(1, "", w)
	if err != nil || s.actor != "alice" || s.op != "publish" || fmt.Sprint(s.args) != "[room hi there]" ||
		s.opts["custom_type"] != "xxx" || s.wantErr != 11010 {
		t.Fatalf("step %+v, %v", s, err)
	}
	w, _ = cfWords(`a subscribe_topic s t failed=`)
	if s, _ := cfParseStep(1, "", w); s.opts["failed"] != "" || len(cfPairs(s.opts["failed"])) != 0 {
		t.Fatalf("failed= is the empty list: %+v", s)
	}
	w, _ = cfWords(`a set_parameters "{\"k\": 1}"`)
	if s, _ := cfParseStep(1, "", w); s.args[0] != `{"k": 1}` {
		t.Fatalf("a quoted JSON argument: %q", s.args)
	}
	if _, err := cfWords(`"open`); err == nil || !strings.Contains(err.Error(), "unterminated quote") {
		t.Fatalf("unterminated quote: %v", err)
	}
	if _, err := cfWords(`"a\t"`); err == nil || !strings.Contains(err.Error(), "bad escape") {
		t.Fatalf("bad escape: %v", err)
	}
	w, _ = cfWords(`a login -> fine`)
	if _, err := cfParseStep(1, "", w); err == nil {
		t.Fatal("a bad outcome must be refused")
	}
	if got := cfDuplicateKey(cfPairs("a:1,b:2,a:3")); got != "a" {
		t.Fatalf("duplicate key %q", got)
	}
}

// TestConformance runs every scenario against `rtm2 serve` and, where it needs no standalone
// server, against the embedded server (in a child process).
func TestConformance(t *testing.T) {
	if os.Getenv(cfEnvChild) != "" {
		t.Skip("this process runs one scenario against the embedded server (TestConformanceEmbeddedChild)")
	}
	for _, path := range cfScenarioFiles(t) {
		path := path
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Run("serve", func(t *testing.T) { cfRunScenario(t, path, cfServeMode) })
			t.Run("embedded", func(t *testing.T) {
				why, err := cfNeedsServe(path)
				if err != nil {
					t.Fatal(err)
				}
				if why != "" {
					t.Skipf("needs a standalone server (%s)", why)
				}
				cfRunChild(t, path)
			})
			t.Run("cluster", func(t *testing.T) {
				if cfNatsServer() == "" {
					t.Skip("no nats-server: set RTM2_NATS_SERVER, or run scripts/install-nats (it installs one into .venv-nats)")
				}
				if why, ok := cfClusterPending[filepath.Base(path)]; ok {
					t.Skipf("pending in cluster mode: %s", why)
				}
				cfRunScenario(t, path, cfClusterMode)
			})
		})
	}
}

// TestConformanceEmbeddedChild runs the scenario named by RTM2_CONFORMANCE_EMBEDDED against
// the embedded server: started by TestConformance, so that each scenario has the process's
// embedded server to itself.
func TestConformanceEmbeddedChild(t *testing.T) {
	path := os.Getenv(cfEnvChild)
	if path == "" {
		t.Skip("runs only as a child process of TestConformance")
	}
	cfRunScenario(t, path, cfEmbeddedMode)
}

func cfRunChild(t *testing.T, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConformanceEmbeddedChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), cfEnvChild+"="+path)
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "conformance:") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if err != nil {
		t.Fatalf("the embedded run of %s failed (%v):\n%s", filepath.Base(path), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestConformanceEmbeddedChild") {
		t.Fatalf("the embedded run of %s did not pass:\n%s", filepath.Base(path), out)
	}
}

// cfNeedsServe says why a scenario needs a standalone server ("" if the embedded one will do).
func cfNeedsServe(path string) (string, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, raw := range strings.Split(string(text), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		w, err := cfWords(line)
		if err != nil {
			return "", err
		}
		switch {
		case w[0] == "server" && len(w) > 1 && w[1] == "restart":
			return "a server restart", nil
		case w[0] == "server" && len(w) > 1 && w[1] == "cert":
			return "an app certificate", nil
		case w[0] == "server":
			for _, x := range w[2:] {
				if x != "rate_limits=off" {
					return "server option " + x, nil
				}
			}
		case w[0] == "ghost":
			return "a ghost process", nil
		}
	}
	return "", nil
}

// ---- the runner ----

type cfActor struct {
	name, user string
	c          RTMClient
	cancel     context.CancelFunc
	q          *cfQueue

	mu    sync.Mutex
	fwd   map[any]bool    // Go channels already forwarded
	feeds map[string]bool // subscriptions whose service channels are forwarded

	started     chan error // the outcome of `start`, awaited by `finish`
	startedLine int
}

func cfFeedKey(service string, k chKey) string {
	return fmt.Sprintf("%s/%d/%s", service, k.typ, k.name)
}

// newFeed marks a feed as forwarded; false if it already was.
func (a *cfActor) newFeed(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.feeds[key] {
		return false
	}
	a.feeds[key] = true
	return true
}

// forgetFeeds forgets the feeds of an ended subscription (the suffix after the service).
func (a *cfActor) forgetFeeds(match func(string) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.feeds {
		_, rest, _ := strings.Cut(k, "/")
		if match(rest) || match("/"+rest) || match(k) {
			delete(a.feeds, k)
		}
	}
}

// cfForward forwards a Go channel's values into the client's queue (once per Go channel).
func cfForward[T any](r *cfRunner, a *cfActor, ch <-chan T, conv func(T) *cfEvent) {
	if ch == nil {
		return
	}
	a.mu.Lock()
	seen := a.fwd[ch]
	a.fwd[ch] = true
	a.mu.Unlock()
	if seen {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case v := <-ch:
				a.q.push(conv(v))
			case <-r.done:
				return
			}
		}
	}()
}

type cfRunner struct {
	t        *testing.T
	file     string
	embedded bool
	cert     bool
	srv      *cfServe
	cluster  *cfCluster // cluster mode: the nodes (srv is nil)
	clients  map[string]*cfActor
	ghosts   map[string]*cfProc
	done     chan struct{}
	wg       sync.WaitGroup
	noted    map[string]bool
	skipHits map[string]bool
}

// note logs a skipped step or an unchecked field once (prefixed "conformance:").
func (r *cfRunner) note(s *cfStep, what string) {
	msg := fmt.Sprintf("conformance: %s:%d: %s", r.file, s.line, what)
	if !r.noted[msg] {
		r.noted[msg] = true
		r.t.Log(msg)
	}
}

func (r *cfRunner) notChecked(s *cfStep, field, why string) {
	r.note(s, fmt.Sprintf("field %s not checked: %s", field, why))
}

// What a scenario runs against.
type cfMode int

const (
	cfServeMode    cfMode = iota // one `rtm2 serve`
	cfEmbeddedMode               // the embedded server
	cfClusterMode                // a 3-node cluster (tests/conformance/cluster.py)
)

func cfRunScenario(t *testing.T, path string, mode cfMode) {
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &cfRunner{t: t, file: filepath.Base(path), embedded: mode == cfEmbeddedMode, clients: map[string]*cfActor{},
		ghosts: map[string]*cfProc{}, done: make(chan struct{}), noted: map[string]bool{}, skipHits: map[string]bool{}}
	if mode == cfClusterMode {
		r.cluster = &cfCluster{} // started by the server step
	}
	t.Cleanup(r.close)
	started := false
	for i, raw := range strings.Split(string(text), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := r.runLine(i+1, line, &started); err != nil {
			t.Fatalf("%s:%d: %s\n    step: %s", r.file, i+1, err, line)
		}
	}
	if _, isDefault := cfScenarioDir(); isDefault {
		for key, sk := range cfSkips {
			if strings.HasPrefix(key, r.file+":") && !r.skipHits[key] {
				t.Errorf("cfSkips[%q] (%q) matched no step: update the table", key, sk.text)
			}
		}
	}
}

func (r *cfRunner) runLine(line int, text string, started *bool) error {
	w, err := cfWords(text)
	if err != nil {
		return err
	}
	if w[0] != "server" && !*started {
		return fmt.Errorf("server must be the first step")
	}
	switch {
	case w[0] == "server" && len(w) > 1 && w[1] == "restart":
		if r.cluster != nil && r.cluster.cmd != nil {
			return r.cluster.restart()
		}
		if r.embedded || r.srv == nil {
			return fmt.Errorf("server restart needs rtm2 serve")
		}
		srv, err := r.srv.restart(r.t)
		if err != nil {
			return err
		}
		r.srv = srv
		return nil
	case w[0] == "server":
		if *started {
			return fmt.Errorf("a second server step")
		}
		*started = true
		return r.startServer(w)
	case w[0] == "client":
		return r.addClient(w)
	case w[0] == "ghost":
		return r.ghost(w)
	case w[0] == "kill":
		if len(w) < 2 || r.ghosts[w[1]] == nil {
			return fmt.Errorf("no ghost %v", w[1:])
		}
		r.ghosts[w[1]].kill()
		delete(r.ghosts, w[1])
		return nil
	case w[0] == "repeat":
		var n int
		if len(w) < 3 {
			return fmt.Errorf("bad repeat")
		}
		if _, err := fmt.Sscanf(w[1], "%d", &n); err != nil {
			return fmt.Errorf("bad repeat count %q", w[1])
		}
		for k := 0; k < n; k++ {
			ws := make([]string, len(w)-2)
			for j, x := range w[2:] {
				ws[j] = strings.ReplaceAll(x, "{i}", fmt.Sprint(k))
			}
			s, err := cfParseStep(line, text, ws)
			if err != nil {
				return err
			}
			if err := r.runStep(s); err != nil {
				return fmt.Errorf("(repeat %d) %v", k, err)
			}
		}
		return nil
	}
	s, err := cfParseStep(line, text, w)
	if err != nil {
		return err
	}
	return r.runStep(s)
}

func (r *cfRunner) startServer(w []string) error {
	mode := "dev"
	if len(w) > 1 {
		mode = w[1]
	}
	if mode != "dev" && mode != "cert" {
		return fmt.Errorf("unknown server mode %s", mode)
	}
	r.cert = mode == "cert"
	notice, rateLimits := "30", false
	flagNames := map[string]string{"ttl_unit_ms": "--ttl-unit-ms", "presence_announce_max": "--presence-announce-max",
		"presence_interval_ms": "--presence-interval-ms"}
	var flags []string
	num := regexp.MustCompile(`^\d+$`)
	for _, x := range w[2:] {
		k, v, _ := strings.Cut(x, "=")
		switch {
		case k == "notice" && num.MatchString(v):
			notice = v
		case x == "rate_limits=reference":
			rateLimits = true
		case x == "rate_limits=off":
			rateLimits = false
		case flagNames[k] != "" && num.MatchString(v):
			flags = append(flags, flagNames[k], v)
		default:
			return fmt.Errorf("unknown server option %s", x)
		}
	}
	if r.cert {
		flags = append(flags, "--app-id", appID, "--app-certificate", cert, "--token-notice-secs", notice)
	}
	if !rateLimits {
		flags = append(flags, "--no-rate-limits")
	}
	if r.embedded {
		if r.cert || rateLimits || len(flags) > 1 {
			return fmt.Errorf("the embedded server runs in development mode without rate limits or options")
		}
		return nil
	}
	if r.cluster != nil {
		c, err := cfStartCluster(r.t, cfNatsServer(), flags)
		if err != nil {
			return err
		}
		r.cluster = c
		return nil
	}
	srv, err := cfStartServe(r.t, "127.0.0.1:0", flags)
	if err != nil {
		return err
	}
	r.srv = srv
	return nil
}

func (r *cfRunner) addClient(w []string) error {
	if len(w) < 2 {
		return fmt.Errorf("client needs a name")
	}
	name, user := w[1], w[1]
	for _, x := range w[2:] {
		if v, ok := strings.CutPrefix(x, "user="); ok {
			user = v
		}
	}
	if r.clients[name] != nil {
		return fmt.Errorf("client %s exists", name)
	}
	endpoint := ""
	if r.cluster != nil {
		endpoint = "tcp://" + r.cluster.nextNode()
	} else if r.srv != nil {
		endpoint = r.srv.endpoint()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := CreateRTM2Client(ctx, RTMConfig{Appid: appID, UserId: user, Endpoint: endpoint}, make(chan error, 16))
	// Come back quickly after a server restart (as the other runners do).
	if err := c.SetParameters(map[string]interface{}{"reconnect_initial_backoff_ms": 20}); err != nil {
		cancel()
		return fmt.Errorf("SetParameters: %v", err)
	}
	r.clients[name] = &cfActor{name: name, user: user, c: c, cancel: cancel, q: newCfQueue(),
		fwd: map[any]bool{}, feeds: map[string]bool{}}
	return nil
}

func (r *cfRunner) ghost(w []string) error {
	if r.embedded || (r.srv == nil && r.cluster == nil) {
		return fmt.Errorf("a ghost needs rtm2 serve")
	}
	if len(w) < 3 {
		return fmt.Errorf("ghost needs a name and a channel")
	}
	name, channel, lock := w[1], w[2], ""
	for _, x := range w[3:] {
		v, ok := strings.CutPrefix(x, "lock=")
		if !ok {
			return fmt.Errorf("unknown ghost option %s", x)
		}
		lock = v
	}
	if r.ghosts[name] != nil {
		return fmt.Errorf("ghost %s exists", name)
	}
	tok, err := r.token("auto", name, "")
	if err != nil {
		return err
	}
	var addr string
	if r.cluster != nil {
		addr = r.cluster.nextNode()
	} else {
		addr = r.srv.addr
	}
	g, err := cfStartGhost(r.t, addr, name, channel, lock, tok)
	if err != nil {
		return fmt.Errorf("ghost %s: %v", name, err)
	}
	r.ghosts[name] = g
	return nil
}

func (r *cfRunner) actor(s *cfStep) (*cfActor, error) {
	a := r.clients[s.actor]
	if a == nil {
		return nil, fmt.Errorf("unknown client %s", s.actor)
	}
	return a, nil
}

// skipReason: why the Go interface cannot run this step ("" when it can).
func (r *cfRunner) skipReason(s *cfStep) (string, error) {
	key := fmt.Sprintf("%s:%d", r.file, s.line)
	if sk, ok := cfSkips[key]; ok {
		if _, isDefault := cfScenarioDir(); isDefault {
			if sk.text != s.text {
				return "", fmt.Errorf("cfSkips[%q] is for %q, but the line is %q: update the table", key, sk.text, s.text)
			}
			r.skipHits[key] = true
			return sk.reason, nil
		}
	}
	inner := s
	if s.op == "start" && len(s.args) > 0 {
		inner = &cfStep{op: s.args[0], args: s.args[1:], opts: s.opts}
	}
	return cfInexpressible(inner), nil
}

// cfOpTimeout bounds one operation (the SDK's own request timeout is 10 s; a subscribe also
// waits for its first snapshots).
const cfOpTimeout = 30 * time.Second

func (r *cfRunner) runStep(s *cfStep) error {
	why, err := r.skipReason(s)
	if err != nil {
		return err
	}
	if why != "" {
		r.note(s, "step skipped: "+why)
		return nil
	}
	a, err := r.actor(s)
	if err != nil {
		return err
	}
	switch s.op {
	case "expect":
		return r.expect(a, s)
	case "start":
		return r.start(a, s)
	case "finish":
		return r.finish(a, s)
	}
	done := make(chan error, 1)
	go func() { done <- r.op(a, s) }()
	t := time.NewTimer(cfOpTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return r.outcome(s, fmt.Sprintf("%s %s", s.actor, s.op), err)
	case <-t.C:
		return fmt.Errorf("%s %s did not complete within %s", s.actor, s.op, cfOpTimeout)
	}
}

func cfAsRTM(err error, re *RTMError) bool { return errors.As(err, re) }

func (r *cfRunner) outcome(s *cfStep, what string, err error) error {
	var fail *cfRunnerError
	if errors.As(err, &fail) {
		return fmt.Errorf("%s: %s", what, fail.msg)
	}
	var re RTMError
	if err != nil && !cfAsRTM(err, &re) {
		return fmt.Errorf("%s: an error that is not an RTMError: %v", what, err)
	}
	switch {
	case s.wantErr == 0 && err != nil:
		return fmt.Errorf("%s: unexpected error %v", what, err)
	case s.wantErr != 0 && err == nil:
		return fmt.Errorf("%s: succeeded, expected error %d", what, s.wantErr)
	case s.wantErr != 0 && re.Code() != s.wantErr:
		return fmt.Errorf("%s: wrong code %d (%v), expected %d", what, re.Code(), err, s.wantErr)
	}
	return nil
}

// start: `NAME start <operation> ...` starts it without waiting (one per client). Acquire
// sends its request at once, in call order with the client's later requests.
func (r *cfRunner) start(a *cfActor, s *cfStep) error {
	if a.started != nil {
		return fmt.Errorf("%s already started an operation (line %d)", a.name, a.startedLine)
	}
	if len(s.args) == 0 || s.wantErr != 0 {
		return fmt.Errorf("start takes an operation and no outcome")
	}
	inner := &cfStep{line: s.line, text: s.text, actor: s.actor, op: s.args[0], args: s.args[1:], opts: s.opts}
	out := make(chan error, 1)
	if inner.op == "acquire_lock" && len(inner.args) >= 2 {
		ct, err := cfChannelType(inner.opts)
		if err != nil {
			return err
		}
		acquired := a.c.Lock().Acquire(inner.args[0], ct, inner.args[1], cfFlag(inner.opts, "retry", false))
		go func() { out <- <-acquired }()
	} else {
		// Other operations run on their own goroutine: not ordered with the next steps.
		go func() { out <- r.op(a, inner) }()
	}
	a.started, a.startedLine = out, s.line
	return nil
}

// finish: `NAME finish [-> ...]` waits (at most 10 s) for the started operation.
func (r *cfRunner) finish(a *cfActor, s *cfStep) error {
	out, line := a.started, a.startedLine
	a.started = nil
	if out == nil {
		return fmt.Errorf("%s started no operation", a.name)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-out:
		return r.outcome(s, fmt.Sprintf("%s finish (of line %d)", a.name, line), err)
	case <-t.C:
		return fmt.Errorf("%s finish (of line %d): not done within %s", a.name, line, wait)
	}
}

// expect waits (at most 10 s) for an event of the kind whose listed fields match; for
// messages the next one must match.
func (r *cfRunner) expect(a *cfActor, s *cfStep) error {
	if len(s.args) == 0 {
		return fmt.Errorf("expect needs an event kind")
	}
	kind := s.args[0]
	fields, ok := cfKindFields[kind]
	if !ok {
		return fmt.Errorf("unknown event kind %s", kind)
	}
	known := map[string]bool{}
	for _, f := range fields {
		known[f] = true
	}
	want := map[string][]string{}
	for k, v := range s.opts {
		if !known[k] {
			return fmt.Errorf("unknown field %s of %s", k, kind)
		}
		if cfSetFields[kind][k] {
			v = cfCanon(cfList(v))
		}
		want[k] = []string{v}
		if kind != "link_state" {
			continue
		}
		switch k {
		case "state":
			if want[k] = cfLinkStateInGo[v]; want[k] == nil {
				return fmt.Errorf("link state %s has no Go connection state", v)
			}
		case "reason":
			reason, ok := cfLinkReasonInGo[v]
			if !ok {
				return fmt.Errorf("link-state reason %s has no Go ConnectionChangedReason in this runner", v)
			}
			want[k] = []string{fmt.Sprint(reason)}
		}
	}
	_, namesChannel := s.opts["channel"]
	deadline := time.Now().Add(wait)
	var seen []string // the events of the kind that did not match, for the failure message
	for {
		ev := a.q.pop(deadline)
		if n := DroppedEvents(a.c); n > 0 {
			return fmt.Errorf("%s dropped %d events (a Go channel was full)", a.name, n)
		}
		if ev == nil {
			if len(seen) == 0 {
				return fmt.Errorf("%s: no %s event within %s", a.name, kind, wait)
			}
			return fmt.Errorf("%s: no matching %s event within %s; it got:\n      %s", a.name, kind, wait,
				strings.Join(seen, "\n      "))
		}
		if ev.kind != kind {
			continue
		}
		w := map[string][]string{}
		for k, v := range want {
			if why, missing := ev.missing[k]; missing {
				r.notChecked(s, k, why)
				continue
			}
			w[k] = v
		}
		mismatch := ev.mismatch(w)
		if kind == "token_will_expire" && !namesChannel && ev.alts[0]["channel"] != "" {
			continue // a stream channel's notice; the login token's is expected
		}
		if mismatch == "" {
			return nil
		}
		if kind == "message" {
			return fmt.Errorf("%s: the next message differs: %s in %s", a.name, mismatch, ev)
		}
		if len(seen) < 8 {
			seen = append(seen, fmt.Sprintf("%s (%s)", ev, mismatch))
		}
	}
}

// mismatch describes why no alternative of e matches want ("" when one does).
func (e *cfEvent) mismatch(want map[string][]string) string {
	first := ""
	keys := cfKeys(want)
	for _, alt := range e.alts {
		bad := ""
		for _, k := range keys {
			ok := false
			for _, v := range want[k] {
				if alt[k] == v {
					ok = true
				}
			}
			if !ok {
				bad = fmt.Sprintf("field %s is %q, expected %q", k, alt[k], strings.Join(want[k], " or "))
				break
			}
		}
		if bad == "" {
			return ""
		}
		if first == "" {
			first = bad
		}
	}
	if first == "" {
		first = "no fields"
	}
	return first
}

// close kills the ghosts, frees every client (its context cancelled: logout and free), stops
// the forwarders, then the server.
func (r *cfRunner) close() {
	for _, g := range r.ghosts {
		g.kill()
	}
	for _, a := range r.clients {
		a.cancel()
	}
	for _, a := range r.clients {
		waitFreed(r.t, a.c)
	}
	close(r.done)
	r.wg.Wait()
	if r.srv != nil {
		r.srv.proc.kill()
	}
	if r.cluster != nil && r.cluster.cmd != nil {
		r.cluster.stop()
	}
}
