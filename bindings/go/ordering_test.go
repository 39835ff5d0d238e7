package rtm2

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// One publisher's messages reach each subscriber's Go channel in publish order (RELIABILITY
// row 1): Publish returns once the server has the message, the SDK's dispatcher delivers
// events in order and the package hands them to each Go channel in that order. Two
// subscribers, embedded and `rtm2 serve`; the subscribers read while the publisher publishes.
func TestPublishOrderReachesEverySubscriber(t *testing.T) {
	for _, w := range places(t) {
		t.Run(w.name, func(t *testing.T) {
			const n = 2000
			room := uniq("order")
			pub, _, _, _ := loggedIn(t, w, uniq("pub"))
			var subs []chan *Message
			for i := 0; i < 2; i++ {
				c, _, _, _ := loggedIn(t, w, uniq("sub"))
				ch, err := c.Subscribe(room, WithMessagePresence(false))
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, ch)
			}
			var wg sync.WaitGroup
			inversions := make([]int, len(subs))
			for i, ch := range subs {
				wg.Add(1)
				go func(i int, ch chan *Message) {
					defer wg.Done()
					last := -1
					for got := 0; got < n; got++ {
						var m *Message
						select {
						case m = <-ch:
						case <-time.After(wait):
							t.Errorf("subscriber %d: message %d did not come", i, got)
							return
						}
						k, err := strconv.Atoi(string(m.Message))
						if err != nil {
							t.Errorf("payload %q", m.Message)
							return
						}
						if k != last+1 {
							inversions[i]++
						}
						last = k
					}
				}(i, ch)
			}
			for k := 0; k < n; k++ {
				if err := pub.Publish(room, []byte(fmt.Sprint(k)), WithMessageType(MessageTypeString)); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			for i, inv := range inversions {
				if inv != 0 {
					t.Errorf("subscriber %d saw %d messages out of order", i, inv)
				}
			}
		})
	}
}

// Lock acquisitions start in the call, so acquisitions made one after another by one client
// reach the server in that order (Acquire returns before the outcome).
func TestAcquireStartsInCallOrder(t *testing.T) {
	c, _, _, _ := loggedIn(t, embedded, uniq("acq"))
	ch := uniq("acq")
	for i := 0; i < 20; i++ {
		if err := c.Lock().Set(ch, ChannelTypeMessage, fmt.Sprint("l", i), 10); err != nil {
			t.Fatal(err)
		}
	}
	var outs []<-chan error
	for i := 0; i < 20; i++ {
		outs = append(outs, c.Lock().Acquire(ch, ChannelTypeMessage, fmt.Sprint("l", i), false))
	}
	// Every acquisition succeeds; the fencing tokens (one counter per server) follow call order.
	for _, o := range outs {
		if err := recv(t, o, "acquire"); err != nil {
			t.Fatal(err)
		}
	}
	locks, err := c.Lock().Get(ch, ChannelTypeMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 20; i++ {
		a, b := locks[fmt.Sprint("l", i-1)].FencingToken, locks[fmt.Sprint("l", i)].FencingToken
		if a == 0 || b <= a {
			t.Fatalf("lock l%d token %d, l%d token %d: not in call order", i-1, a, i, b)
		}
	}
}
