package rtm2

import "sync"

// outbox feeds one Go channel the package hands out. The SDK's dispatcher pushes events into
// it without ever waiting; a goroutine of its own moves them into the Go channel as fast as
// the application reads. At most the client's event buffer (RTMConfig.EventBuffer) may wait
// for the reader; what a full outbox cannot take is dropped, counted and logged. Order is kept.
type outbox[T any] struct {
	ch    chan T
	limit int
	what  string
	c     *client

	mu      sync.Mutex
	items   []T
	head    int
	stopped bool
	wake    chan struct{}
	stop    chan struct{}
}

// outboxChan is the capacity of the Go channel itself (what waits beyond it is in items).
const outboxChan = 64

func newOutbox[T any](c *client, what string) *outbox[T] {
	o := &outbox[T]{ch: make(chan T, outboxChan), limit: c.eventBuffer, what: what, c: c,
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	c.pumps.Add(1)
	go o.pump()
	return o
}

// push queues v for the reader, or drops it when the reader is EventBuffer events behind.
func (o *outbox[T]) push(v T) {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return
	}
	if len(o.items)-o.head >= o.limit {
		o.mu.Unlock()
		o.c.noteDropped(o.what, 1)
		return
	}
	o.items = append(o.items, v)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// close ends the pump; what still waits is discarded (the channel is not closed: readers
// never see a closed channel, as with the Go SDK).
func (o *outbox[T]) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.stopped {
		o.stopped = true
		o.items = nil
		close(o.stop)
	}
}

func (o *outbox[T]) pump() {
	defer o.c.pumps.Done()
	var zero T
	for {
		o.mu.Lock()
		if o.stopped {
			o.mu.Unlock()
			return
		}
		// Hand on what the Go channel takes without waiting (it may hold outboxChan).
		sent := 0
	fill:
		for o.head < len(o.items) {
			select {
			case o.ch <- o.items[o.head]:
				o.items[o.head] = zero // no reference kept to what was handed on
				o.head++
				sent++
			default:
				break fill
			}
		}
		if o.head == len(o.items) {
			// Nothing waits: give back a large backlog's memory, then sleep until a push.
			if cap(o.items) > 4*outboxChan {
				o.items = nil
			} else {
				o.items = o.items[:0]
			}
			o.head = 0
			o.mu.Unlock()
			select {
			case <-o.wake:
				continue
			case <-o.stop:
				return
			}
		}
		if o.head >= 1024 && 2*o.head >= len(o.items) {
			// A reader that stays behind: move what waits to the front (the slice's dead
			// prefix would grow without end).
			rest := copy(o.items, o.items[o.head:])
			clear(o.items[rest:])
			o.items = o.items[:rest]
			o.head = 0
		}
		if sent > 0 {
			o.mu.Unlock()
			continue
		}
		// The Go channel is full: wait for the reader with the next event, which stays counted
		// as waiting (in items) until the channel takes it.
		next := o.items[o.head]
		o.mu.Unlock()
		select {
		case o.ch <- next:
		case <-o.stop:
			return
		}
		o.mu.Lock()
		if !o.stopped {
			o.items[o.head] = zero
			o.head++
		}
		o.mu.Unlock()
	}
}
