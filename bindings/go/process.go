package rtm2

/*
#include "rtm2.h"
*/
import "C"

import "time"

// ConnectedTo reports where an rtm2 client is connected, or was last: the endpoint as text
// (e.g. "tcp://10.0.0.2:9696") and the id of the node that answered ("" for a server outside
// a cluster; a client given several endpoints fails over between them). ok is false before the
// first connection, or for a client not made by this package. (Not part of the Agora
// interface: a function, as the interface cannot grow.)
func ConnectedTo(c RTMClient) (endpoint, nodeID string, ok bool) {
	cl, isOurs := c.(*client)
	if !isOurs {
		return "", "", false
	}
	h, err := cl.handle()
	if err != nil {
		return "", "", false
	}
	defer cl.release()
	var e, n *C.char
	if st, _ := syncCall(func() C.int32_t { return C.rtm2_client_get_connected_to(h, &e, &n) }); st != 0 {
		return "", "", false
	}
	defer C.rtm2_string_free(e)
	defer C.rtm2_string_free(n)
	return gostr(e), gostr(n), true
}

// UndecryptableMessages is how many messages the client dropped because they did not decrypt
// with its RTMConfig.Encryption: sent with another key, salt or mode, sent in clear to an
// encrypting client or encrypted to a plain one, or tampered with. Such messages never reach
// a Go channel. 0 for a client not made by this package, one whose configuration failed, or
// one already freed. (Not part of the Agora interface: a function, as the interface cannot
// grow.)
func UndecryptableMessages(c RTMClient) uint64 {
	cl, isOurs := c.(*client)
	if !isOurs {
		return 0
	}
	// Not handle(): reading the count does not fix the endpoint.
	cl.life.RLock()
	defer cl.life.RUnlock()
	if cl.h == nil {
		return 0
	}
	h := cl.h
	var n C.uint64_t
	if st, _ := syncCall(func() C.int32_t { return C.rtm2_client_get_undecryptable_messages(h, &n) }); st != 0 {
		return 0
	}
	return uint64(n)
}

// LogoutAll logs out every client of the process still logged in, waiting at most timeout
// in all, and returns how many logouts it waited for. Call it (or Logout on each client)
// before a program exits, so that other users see its users leave at once instead of after
// the presence timeout; a Go program has no exit hook that could do it for you (Python and
// Node log out by themselves at exit). The clients stay usable, logged out.
func LogoutAll(timeout time.Duration) int {
	ms := timeout.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > int64(^uint32(0)) {
		ms = int64(^uint32(0))
	}
	return int(C.rtm2_logout_all(C.uint32_t(ms)))
}
