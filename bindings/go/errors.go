package rtm2

import "fmt"

// RTMError is an RTM error code and its name. The package's errors are the ERROR_* values
// (compare with ==); the reason the SDK or the server gave is logged at debug level.
type RTMError struct {
	msg   string
	errno int
}

func (e RTMError) Error() string { return fmt.Sprintf("%d: %s", e.errno, e.msg) }

// Code is the RTM error code (rtm2 addition).
func (e RTMError) Code() int { return e.errno }

func newRTMError(errno int, msg string) error { return RTMError{errno: errno, msg: msg} }

// ErrorFromCode returns the ERROR_* value of an RTM code (nil for 0).
func ErrorFromCode(errno int32) error {
	if errno == 0 {
		return nil
	}
	if e, ok := errorTable[int(errno)]; ok {
		return e
	}
	return newRTMError(int(errno), "UNKNOWN ERROR")
}
