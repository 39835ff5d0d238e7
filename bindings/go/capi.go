package rtm2

// The C side of the package: the rtm2 library, linked statically (see docs/go.md), and small
// C helpers that hand the library the package's callbacks (exported from callbacks.go) and
// carry a Go-side number as a callback's user_data.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -l:librtm2.a -lz -lgcc_s -lutil -lrt -lpthread -lm -ldl
#include <stdint.h>
#include <stdlib.h>
#include "rtm2.h"

extern void goOnComplete(void *, uint64_t, int32_t, rtm2_result *);
extern void goOnDestroy(void *);
extern void goOnMessage(void *, rtm2_message_event *);
extern void goOnMessages(void *, rtm2_message_event *, size_t);
extern void goOnTopic(void *, rtm2_topic_event *);
extern void goOnLinkState(void *, rtm2_link_state_event *);
extern void goOnTokenWillExpire(void *, char *);
extern void goOnOverflow(void *, uint64_t);
extern void goOnPresence(void *, rtm2_presence_event *);
extern void goOnStorage(void *, rtm2_storage_event *);
extern void goOnLock(void *, rtm2_lock_event *);

static rtm2_completion_cb go_complete(void) { return (rtm2_completion_cb)goOnComplete; }
static void *go_token(uintptr_t t) { return (void *)t; }

static void go_listener(rtm2_listener *l, uintptr_t id) {
    l->struct_size = sizeof *l;
    l->user_data = (void *)id;
    l->destroy = goOnDestroy;
    l->on_message = (void (*)(void *, const rtm2_message_event *))goOnMessage;
    // Messages come in runs: one cgo callback per run, not per message.
    l->on_message_batch = (void (*)(void *, const rtm2_message_event *, size_t))goOnMessages;
    l->on_topic = (void (*)(void *, const rtm2_topic_event *))goOnTopic;
    l->on_link_state = (void (*)(void *, const rtm2_link_state_event *))goOnLinkState;
    l->on_token_will_expire = (void (*)(void *, const char *))goOnTokenWillExpire;
    l->on_overflow = goOnOverflow;
    l->on_presence = (void (*)(void *, const rtm2_presence_event *))goOnPresence;
    l->on_storage = (void (*)(void *, const rtm2_storage_event *))goOnStorage;
    l->on_lock = (void (*)(void *, const rtm2_lock_event *))goOnLock;
}

// Element i of a C array, for the decoders (Go cannot index a C pointer).
static const char *go_str_at(const char *const *a, size_t i) { return a[i]; }
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// cstr is a C copy of s; free it with free.
func cstr(s string) *C.char { return C.CString(s) }

func free(p *C.char) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

func gostr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// strs copies a C array of n strings.
func strs(a **C.char, n C.size_t) []string {
	out := make([]string, 0, int(n))
	for i := C.size_t(0); i < n; i++ {
		out = append(out, gostr(C.go_str_at(a, i)))
	}
	return out
}

// cslice views n C elements of type T at p (valid while the callback runs).
func cslice[T any](p *T, n C.size_t) []T {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice(p, int(n))
}

// An operation in flight: its completion arrives on ch, decoded by decode (which runs inside
// the library's callback and must copy what it keeps).
type pending struct {
	ch     chan outcome
	decode func(*C.rtm2_result) any
}

type outcome struct {
	status int32
	reason string
	value  any
}

var (
	pendings  sync.Map // token -> *pending
	nextToken atomic.Uint64
)

// begin starts one asynchronous C call (given the completion's token); its outcome arrives on
// the returned channel. A call refused at once gives its status and the thread's last error
// message.
func begin(start func(tok unsafe.Pointer) C.int32_t, decode func(*C.rtm2_result) any) <-chan outcome {
	tok := nextToken.Add(1)
	p := &pending{ch: make(chan outcome, 1), decode: decode}
	pendings.Store(tok, p)
	// The last error message is per OS thread: read it on the thread that made the call.
	runtime.LockOSThread()
	st := start(C.go_token(C.uintptr_t(tok)))
	var msg string
	if st != 0 {
		msg = gostr(C.rtm2_last_error_message())
	}
	runtime.UnlockOSThread()
	if st != 0 {
		pendings.Delete(tok)
		p.ch <- outcome{status: int32(st), reason: msg}
	}
	return p.ch
}

// sync runs one synchronous C call; a failure carries the thread's last error message.
func syncCall(call func() C.int32_t) (int32, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := call()
	if st != 0 {
		return int32(st), gostr(C.rtm2_last_error_message())
	}
	return 0, ""
}

func completeCb() C.rtm2_completion_cb { return C.go_complete() }

// fillListener points the listener's callbacks at this package, with the client's id as
// user_data.
func fillListener(l *C.rtm2_listener, id uintptr) { C.go_listener(l, C.uintptr_t(id)) }
