package rtm2

import (
	"fmt"

	"go.uber.org/zap"
)

// noteDropped counts dropped events; the first and then every 1,000th drop is logged.
func (c *client) noteDropped(what string, n uint64) {
	total := c.dropped.Add(n)
	if total == n || total/1000 != (total-n)/1000 {
		c.log.Warn("rtm2: events dropped: a Go channel is full (read it faster, or it holds EventBuffer events)",
			zap.String("channel", what), zap.Uint64("dropped_total", total))
	}
}

// routeMessageLocked hands a message to its Go channel (under c.mu).
func (c *client) routeMessageLocked(t ChannelType, channel, topic string, m *Message) {
	switch t {
	case ChannelTypeUser:
		c.p2pCh.push(m)
	case ChannelTypeMessage:
		if o := c.subs[channel]; o != nil {
			o.push(m)
		}
	case ChannelTypeStream:
		if s := c.streams[channel]; s != nil {
			if o := s.topicMsgs[topic]; o != nil {
				o.push(m)
			}
		}
	}
}

func (c *client) routeTopicEvent(channel string, e *TopicEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[channel]; s != nil {
		s.events.push(e)
	}
}

func (c *client) routeTokenWillExpire(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[channel]; channel != "" && s != nil {
		s.tokens.push(channel)
		return
	}
	c.tokenCh.push(channel)
}

// linkState is a link-state event of the C API (RTM 2.2 states and reasons).
type linkState struct {
	current, previous, operation, reason uint32
	text, channel                        string
	// After a reconnect: whether the session was resumed without loss, the channels that may
	// have missed messages, and what could not be restored (logged: ConnectionEvent has no
	// room for them).
	resumed              bool
	affected, unrestored []string
}

// The link states, operations and reasons of the C API (include/rtm2.h).
const (
	linkIdle         = 0
	linkConnecting   = 1
	linkConnected    = 2
	linkDisconnected = 3
	linkSuspended    = 4
	linkFailed       = 5

	opLogout = 1
)

// legacyState translates a link state into the Go SDK's connection state.
func legacyState(l linkState) int32 {
	switch l.current {
	case linkIdle:
		return ConnectionStateDISCONNECTED
	case linkConnecting:
		if l.previous == linkDisconnected || l.previous == linkSuspended {
			return ConnectionStateRECONNECTING
		}
		return ConnectionStateCONNECTING
	case linkConnected:
		return ConnectionStateCONNECTED
	case linkDisconnected, linkSuspended:
		// The SDK reconnects by itself.
		return ConnectionStateRECONNECTING
	case linkFailed:
		return ConnectionStateFAILED
	}
	return ConnectionStateDISCONNECTED
}

// legacyReasons: the C API's reason (index) -> the Go SDK's ConnectionChangedReason.
var legacyReasons = [...]int32{
	0:  ConnectionChangedReasonInterrupted,               // UNKNOWN
	1:  ConnectionChangedReasonConnecting,                // LOGIN
	2:  ConnectionChangedReasonLoginSuccess,              // LOGIN_SUCCESS
	3:  ConnectionChangedReasonJoinFailed,                // LOGIN_TIMEOUT
	4:  ConnectionChangedReasonInvalidToken,              // LOGIN_NOT_AUTHORIZED
	5:  ConnectionChangedReasonRejectedByServer,          // LOGIN_REJECTED
	6:  ConnectionChangedReasonConnecting,                // RELOGIN
	7:  ConnectionChangedReasonLogout,                    // LOGOUT
	8:  ConnectionChangedReasonInterrupted,               // AUTO_RECONNECT
	9:  ConnectionChangedReasonLost,                      // RECONNECT_TIMEOUT
	10: ConnectionChangedReasonRejoinSuccess,             // RECONNECT_SUCCESS
	11: ConnectionChangedReasonConnecting,                // JOIN
	12: ConnectionChangedReasonJoinSuccess,               // JOIN_SUCCESS
	13: ConnectionChangedReasonJoinFailed,                // JOIN_FAILED
	14: ConnectionChangedReasonInterrupted,               // REJOIN
	15: ConnectionChangedReasonLeaveChannel,              // LEAVE
	16: ConnectionChangedReasonInvalidToken,              // INVALID_TOKEN
	17: ConnectionChangedReasonTokenExpired,              // TOKEN_EXPIRED
	18: ConnectionChangedReasonInconsistentAppid,         // INCONSISTENT_APP_ID
	19: ConnectionChangedReasonInvalidChannelName,        // INVALID_CHANNEL_NAME
	20: ConnectionChangedReasonRejectedByServer,          // INVALID_USER_ID
	21: ConnectionChangedReasonRejectedByServer,          // NOT_INITIALIZED
	22: ConnectionChangedReasonLost,                      // RTM_SERVICE_NOT_CONNECTED
	23: ConnectionChangedReasonRejectedByServer,          // CHANNEL_INSTANCE_EXCEED_LIMITATION
	24: ConnectionChangedReasonRejectedByServer,          // OPERATION_RATE_EXCEED_LIMITATION
	25: ConnectionChangedReasonJoinFailed,                // CHANNEL_IN_ERROR_STATE
	26: ConnectionChangedReasonPresenceNotReady,          // PRESENCE_NOT_CONNECTED
	27: ConnectionChangedReasonSameUidLogin,              // SAME_UID_LOGIN
	28: ConnectionChangedReasonBannedByServer,            // KICKED_OUT_BY_SERVER
	29: ConnectionChangedReasonKeepaliveTimeout,          // KEEP_ALIVE_TIMEOUT
	30: ConnectionChangedReasonInterrupted,               // CONNECTION_ERROR
	31: ConnectionChangedReasonPresenceNotReady,          // PRESENCE_NOT_READY
	32: ConnectionChangedReasonClientIpAddrChanged,       // NETWORK_CHANGE
	33: ConnectionChangedReasonRejectedByServer,          // SERVICE_NOT_SUPPORTED
	34: ConnectionChangedReasonStreamChannelNotAvailable, // STREAM_CHANNEL_NOT_AVAILABLE
	35: ConnectionChangedReasonRejectedByServer,          // STORAGE_NOT_AVAILABLE
	36: ConnectionChangedReasonRejectedByServer,          // LOCK_NOT_AVAILABLE
	37: ConnectionChangedReasonRejectedByServer,          // LOGIN_TOO_FREQUENT
}

func legacyReason(l linkState) int32 {
	if l.operation == opLogout {
		return ConnectionChangedReasonLogout
	}
	if int(l.reason) < len(legacyReasons) {
		return legacyReasons[l.reason]
	}
	return ConnectionChangedReasonInterrupted
}

// ConnectionFailedError is what errChan receives when the client failed for good.
type ConnectionFailedError struct {
	Reason int32  // a ConnectionChangedReason… constant
	Text   string // the SDK's or the server's words
}

func (e *ConnectionFailedError) Error() string {
	return fmt.Sprintf("rtm2: the connection failed (reason %d): %s", e.Reason, e.Text)
}

func (c *client) routeLinkState(l linkState) {
	e := &ConnectionEvent{State: legacyState(l), Reason: legacyReason(l)}
	c.log.Debug("rtm2: connection state", zap.Int32("state", e.State), zap.Int32("reason", e.Reason),
		zap.String("text", l.text), zap.String("channel", l.channel), zap.Bool("is_resumed", l.resumed),
		zap.Strings("affected_channels", l.affected), zap.Strings("unrestored_channels", l.unrestored))
	if l.channel != "" {
		// A stream channel's own link events (joined, left, rejoined) are not the client's
		// connection: the Go SDK's connection events describe the client alone, and a FAILED
		// there means "recreate the client".
		return
	}
	c.mu.Lock()
	c.connCh.push(e)
	c.mu.Unlock()
	if l.current == linkFailed {
		c.report(&ConnectionFailedError{Reason: e.Reason, Text: l.text})
	}
}

// takeSnapshot keeps the first snapshot aside for Get…Chan; later ones (after a reconnect)
// are delivered as events.
func takeSnapshot[E any, S any](f *feed[E, S], snap S) bool {
	if f.got {
		return false
	}
	f.got = true
	f.snap = snap
	close(f.ready)
	return true
}

func (c *client) routePresence(key chKey, e *PresenceEvent, snapshot map[string]*UserState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.presence[key]
	if f == nil {
		return
	}
	if e.Type == PresenceTypeSnapshot && takeSnapshot(f, snapshot) {
		return
	}
	f.ch.push(e)
}

func (c *client) routeChannelMetadata(key chKey, e *StorageEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.chMeta[key]
	if f == nil {
		return
	}
	if e.EventType == StorageTypeSnapshot && takeSnapshot(f, e.Items) {
		return
	}
	f.ch.push(e)
}

func (c *client) routeUserMetadata(user string, e *StorageEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.userMeta[user]
	if f == nil {
		return
	}
	if e.EventType == StorageTypeSnapshot && takeSnapshot(f, e.Items) {
		return
	}
	f.ch.push(e)
}

func (c *client) routeLock(key chKey, e *LockEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.locks[key]
	if f == nil {
		return
	}
	if e.Type == LockTypeSnapshot {
		m := map[string]*LockDetail{}
		for _, d := range e.Details {
			m[d.Name] = d
		}
		if takeSnapshot(f, m) {
			return
		}
	}
	f.ch.push(e)
}
