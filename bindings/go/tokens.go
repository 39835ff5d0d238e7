package rtm2

/*
#include "rtm2.h"
*/
import "C"

// BuildToken builds an AccessToken2 login token for userId, valid for expireSecs seconds
// (rtm2 addition, for servers and tests; a production app builds tokens on its token server).
func BuildToken(appID, appCertificate, userID string, expireSecs uint32) (string, error) {
	a, c, u := cstr(appID), cstr(appCertificate), cstr(userID)
	defer free(a)
	defer free(c)
	defer free(u)
	var out *C.char
	if st, _ := syncCall(func() C.int32_t { return C.rtm2_token_build(a, c, u, C.uint32_t(expireSecs), &out) }); st != 0 {
		return "", ErrorFromCode(st)
	}
	defer C.rtm2_string_free(out)
	return C.GoString(out), nil
}

// BuildStreamToken builds an AccessToken2 token to join stream channel channel (rtm2 addition).
func BuildStreamToken(appID, appCertificate, channel, userID string, expireSecs uint32) (string, error) {
	a, c, ch, u := cstr(appID), cstr(appCertificate), cstr(channel), cstr(userID)
	defer free(a)
	defer free(c)
	defer free(ch)
	defer free(u)
	var out *C.char
	if st, _ := syncCall(func() C.int32_t {
		return C.rtm2_stream_token_build(a, c, ch, u, C.uint32_t(expireSecs), &out)
	}); st != 0 {
		return "", ErrorFromCode(st)
	}
	defer C.rtm2_string_free(out)
	return C.GoString(out), nil
}

// Version of the rtm2 library.
func Version() string { return C.GoString(C.rtm2_version()) }
