package rtm2

/*
#include "rtm2.h"
*/
import "C"

import "unsafe"

// HistoryMessage is a message stored in a channel's history (rtm2 addition): published with
// WithMessageStoreInHistory(true).
type HistoryMessage struct {
	UserId     string // the publisher
	Type       MessageType
	Message    []byte // decrypted, when the client encrypts
	CustomType string
	// Timestamp is the server's, in ms since the Unix epoch: unique within the channel's
	// history, so paging never skips a message.
	Timestamp uint64
}

// HistoryOptions are the options of GetMessages (rtm2 addition).
type HistoryOptions struct {
	// Count: messages per page, 1..100; 0 (or more than 100) means 100.
	Count uint32
	// Start: only messages older than this server timestamp (ms, exclusive); 0 = from the
	// newest. Pass the newStart GetMessages returned for the next (older) page.
	Start uint64
	// End: only messages at or after this server timestamp (ms, inclusive); 0 = no bound.
	// With both set, Start must be greater than End and at most 24 h after it.
	End uint64
}

type HistoryOption func(o *HistoryOptions)

// WithHistoryCount sets the messages per page (1..100; 0, the default, means 100).
func WithHistoryCount(n uint32) HistoryOption { return func(o *HistoryOptions) { o.Count = n } }

// WithHistoryStart: only messages older than this timestamp (ms, exclusive); pass the
// newStart of the previous page.
func WithHistoryStart(ms uint64) HistoryOption { return func(o *HistoryOptions) { o.Start = ms } }

// WithHistoryEnd: only messages at or after this timestamp (ms, inclusive).
func WithHistoryEnd(ms uint64) HistoryOption { return func(o *HistoryOptions) { o.End = ms } }

type historyPage struct {
	messages []*HistoryMessage
	newStart uint64
}

// GetMessages returns a page of the messages stored in a channel's history, newest first
// (rtm2 addition: the Agora Go interface has no history; a function, as the interface cannot
// grow): a message channel's (ChannelTypeMessage; the client need not be subscribed), or the
// client's own user channel's (ChannelTypeUser, channel = its user id: the messages
// published to it). newStart is 0 when there is no older message; else pass it with
// WithHistoryStart for the next page. Messages that do not decrypt with the client's
// RTMConfig.Encryption are left out.
//
// Errors: ERROR_NOT_LOGIN, ERROR_INVALID_CHANNEL_NAME, ERROR_INVALID_USER_ID,
// ERROR_INVALID_CHANNEL_TYPE (a stream channel), ERROR_HISTORY_INVALID_TIMESTAMP (Start <=
// End, or more than 24 h apart), ERROR_HISTORY_OPERATION_NOT_PERMITTED (another user's user
// channel), ERROR_HISTORY_OPERATION_TIMEOUT, ERROR_HISTORY_NOT_AVAILABLE (a server in a
// cluster); ERROR_INVALID_PARAMETER for a client not made by this package.
func GetMessages(c RTMClient, channel string, channelType ChannelType, opts ...HistoryOption) (messages []*HistoryMessage, newStart uint64, err error) {
	cl, isOurs := c.(*client)
	if !isOurs {
		return nil, 0, ERROR_INVALID_PARAMETER
	}
	var o HistoryOptions
	for _, f := range opts {
		f(&o)
	}
	ch := cstr(channel)
	defer free(ch)
	v, err := cl.op("GetMessages", func(h *C.rtm2_client, cb C.rtm2_completion_cb, tok unsafe.Pointer) C.int32_t {
		return C.rtm2_history_get_messages(h, ch, C.uint32_t(channelType), C.uint32_t(o.Count), C.uint64_t(o.Start),
			C.uint64_t(o.End), cb, tok, nil)
	}, func(r *C.rtm2_result) any {
		page := historyPage{messages: []*HistoryMessage{}}
		if r.history == nil {
			return page
		}
		page.newStart = uint64(r.history.new_start)
		for _, m := range cslice(r.history.messages, r.history.count) {
			var payload []byte
			if m.payload_len > 0 {
				payload = C.GoBytes(unsafe.Pointer(m.payload), C.int(m.payload_len))
			} else {
				payload = []byte{}
			}
			page.messages = append(page.messages, &HistoryMessage{
				UserId:     gostr(m.publisher),
				Type:       MessageType(m.message_type),
				Message:    payload,
				CustomType: gostr(m.custom_type),
				Timestamp:  uint64(m.timestamp_ms),
			})
		}
		return page
	})
	if err != nil {
		return nil, 0, err
	}
	p := v.(historyPage)
	return p.messages, p.newStart, nil
}
