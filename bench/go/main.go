// One subscriber whose messages are delivered into Go code: rtm2 (bindings/go: a receive from
// the subscription's Go channel) or nats.go (a receive from a ChanSubscribe channel). Driven by
// `rtm2-bench lang --lang go` (scripts/bench --only go), which publishes from Rust and reads
// this program's stdout.
//
//	rtm2-bench-go-sub --system rtm2|nats --addr 127.0.0.1:PORT --messages 200000
//
// Counts every message in user code and checks its length. Protocol on stdout, one line each:
//
//	ready        subscribed (the server confirmed); publishing may start
//	n COUNT      every --ack messages: the running count (the publisher's window)
//	done {json}  the count reached --messages, or no message came for --idle-timeout seconds
//
// Timestamps are CLOCK_MONOTONIC nanoseconds, the clock of the harness. After done the
// process waits for stdin to close (so the harness can read its CPU time), then exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
	"rtm2.local/rtm2"
)

const (
	appID   = "b3nchb3nchb3nchb3nchb3nchb3nch01"
	channel = "bench"
)

func monoNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

type counter struct {
	expected, size, ack int
	count, bad          int
	dropped             uint64
	firstNs, lastNs     uint64
}

// onPayload is the per-message user code: count, check the length, report.
func (c *counter) onPayload(p []byte) bool {
	if len(p) != c.size {
		c.bad++
	}
	c.count++
	if c.count == 1 {
		c.firstNs = monoNs()
	}
	if c.count%c.ack == 0 || c.count == c.expected {
		c.lastNs = monoNs()
		fmt.Printf("n %d\n", c.count)
	}
	return c.count >= c.expected
}

// loop receives until the expected count, or until nothing came for the idle timeout.
func loop[T any](c *counter, ch <-chan T, payload func(T) []byte, idle, first time.Duration) {
	timeout := first
	t := time.NewTimer(timeout)
	for {
		select {
		case m := <-ch:
			if c.onPayload(payload(m)) {
				return
			}
			if c.count%1024 == 0 {
				t.Reset(idle)
			}
		case <-t.C:
			return
		}
	}
}

func main() {
	system := flag.String("system", "", "rtm2 or nats")
	addr := flag.String("addr", "", "host:port of the server")
	messages := flag.Int("messages", 200000, "messages expected")
	payload := flag.Int("payload", 128, "payload bytes")
	ack := flag.Int("ack", 4096, "report the count every this many messages")
	_ = flag.String("api", "callback", "how user code receives (Go: a channel receive)")
	idle := flag.Float64("idle-timeout", 10, "seconds without a message that end the run")
	first := flag.Float64("first-timeout", 30, "seconds to wait for the first message")
	flag.Parse()
	c := &counter{expected: *messages, size: *payload, ack: *ack}
	idleD, firstD := time.Duration(*idle*float64(time.Second)), time.Duration(*first*float64(time.Second))
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	switch *system {
	case "rtm2":
		ctx, cancel := context.WithCancel(context.Background())
		client := rtm2.CreateRTM2Client(ctx, rtm2.RTMConfig{Appid: appID, UserId: "sub0", Endpoint: "tcp://" + *addr,
			RequestTimeout: 30000}, nil)
		if _, _, _, err := client.Login(""); err != nil {
			fail(err)
		}
		msgs, err := client.Subscribe(channel, rtm2.WithMessagePresence(false))
		if err != nil {
			fail(err)
		}
		fmt.Println("ready")
		loop(c, msgs, func(m *rtm2.Message) []byte { return m.Message }, idleD, firstD)
		c.dropped = rtm2.DroppedEvents(client)
		defer cancel()
	case "nats":
		nc, err := nats.Connect("nats://"+*addr, nats.NoReconnect())
		if err != nil {
			fail(err)
		}
		ch := make(chan *nats.Msg, 1<<16)
		sub, err := nc.ChanSubscribe(channel, ch)
		if err != nil {
			fail(err)
		}
		if err := nc.Flush(); err != nil {
			fail(err)
		}
		fmt.Println("ready")
		loop(c, ch, func(m *nats.Msg) []byte { return m.Data }, idleD, firstD)
		if d, err := sub.Dropped(); err == nil {
			c.dropped = uint64(d)
		}
		defer nc.Close()
	default:
		fail(fmt.Errorf("--system must be rtm2 or nats"))
	}
	out, _ := json.Marshal(map[string]any{"received": c.count, "bad": c.bad, "dropped": c.dropped,
		"first_ns": c.firstNs, "last_ns": c.lastNs})
	fmt.Printf("done %s\n", out)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
