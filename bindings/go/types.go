package rtm2

import (
	"math"

	"go.uber.org/zap"
)

// RTMConfig configures a client (the fields of the Agora RTM 2 Go SDK's RTMConfig, plus
// Endpoint).
type RTMConfig struct {
	Appid  string // the app id (32 hex characters); required
	UserId string // the user id; required
	// Vid (vendor id) has no meaning without the vendor's cloud: accepted and ignored.
	Vid uint32
	// AreaCode (region selection) has no meaning without the vendor's cloud: the server is
	// named by Endpoint. Accepted and ignored.
	AreaCode uint32
	// PresenceTimeout, seconds (clamped into [5, 300]; 0 = the default, 300).
	PresenceTimeout uint32
	// FilePath: the SDK's own log file ("" = none).
	FilePath string
	// Logger receives this package's log (dropped events, errors' reasons); nil = none.
	Logger *zap.Logger
	// RequestTimeout, milliseconds (0 = the default, 10,000).
	RequestTimeout int32
	// Endpoint of the rtm2 server: "" = the endpoint in the RTM2_ENDPOINT environment
	// variable if it is set (an invalid value: ERROR_INVALID_PARAMETER), else the server
	// embedded in this process; "embedded" = that server (nothing to install or start; it
	// serves this process only: clients in other processes do not see it); "tcp://host:port" or "tls://host:port" for
	// `rtm2 serve` or a cluster; several separated by commas (a cluster's nodes: the client
	// fails over between them, see docs/CLUSTER.md). Also settable with
	// SetParameters({"endpoint": ...}) before Login.
	Endpoint string
	// EventBuffer (rtm2 addition): how many events may wait for the reader of each Go channel
	// the client returns before new ones are dropped (counted, logged); 0 = DefaultEventBuffer.
	EventBuffer int
	// Encryption (rtm2 addition, the RTM 2 SDKs' encryption config; the zero value is none):
	// end-to-end encryption of message, peer-to-peer and topic payloads and presence state
	// values. Invalid settings are ERROR_INVALID_ENCRYPTION_PARAMETER (10020), handled like
	// any configuration error (sent to errChan, returned by every call).
	Encryption EncryptionConfig
}

// EncryptionMode of RTMConfig.Encryption (the RTM 2 SDKs' values).
type EncryptionMode int

const (
	EncryptionModeNone      EncryptionMode = 0 // no encryption (the default)
	EncryptionModeAES128GCM EncryptionMode = 1 // AES-128-GCM
	EncryptionModeAES256GCM EncryptionMode = 2 // AES-256-GCM
)

// EncryptionSaltMaxLen is the longest EncryptionConfig.Salt, in bytes.
const EncryptionSaltMaxLen = 32

// EncryptionConfig is end-to-end encryption (rtm2 addition: the Agora Go SDK's RTMConfig has
// no such field; this is the encryption config of the other RTM 2 SDKs). Every client of a
// conversation needs the same Mode, Key and Salt. A message that does not decrypt with this
// client's settings (another key, salt or mode; plain to an encrypting client or encrypted to
// a plain one; tampered with) is never delivered: it is dropped and counted
// (UndecryptableMessages). A presence state value that does not decrypt is left out.
type EncryptionConfig struct {
	// Mode: EncryptionModeNone (Key and Salt are then ignored), EncryptionModeAES128GCM or
	// EncryptionModeAES256GCM; another value is 10020.
	Mode EncryptionMode
	// Key is the shared secret: a non-empty string with a mode (10020 otherwise), without NUL
	// bytes (10020).
	Key string
	// Salt: at most EncryptionSaltMaxLen (32) bytes (10020 otherwise, whatever the mode); a
	// shorter one is zero-padded, as the RTM 2 SDKs do.
	Salt []byte
}

// ChannelType of a channel.
type ChannelType int

const (
	ChannelTypeNone    ChannelType = 0
	ChannelTypeMessage ChannelType = 1 // message channel
	ChannelTypeStream  ChannelType = 2 // stream channel
	ChannelTypeUser    ChannelType = 3 // a user's own channel: peer-to-peer messages
)

// ConnectionEvent reports a change of the connection's state (ConnectionState… constants)
// and why (ConnectionChangedReason… constants).
type ConnectionEvent struct {
	State  int32
	Reason int32
}

// Connection states and reasons of ConnectionEvent.
const (
	ConnectionStateDISCONNECTED = 1
	ConnectionStateCONNECTING   = 2
	ConnectionStateCONNECTED    = 3
	ConnectionStateRECONNECTING = 4
	ConnectionStateFAILED       = 5

	ConnectionChangedReasonConnecting                = 0
	ConnectionChangedReasonJoinSuccess               = 1
	ConnectionChangedReasonInterrupted               = 2
	ConnectionChangedReasonBannedByServer            = 3
	ConnectionChangedReasonJoinFailed                = 4
	ConnectionChangedReasonLeaveChannel              = 5
	ConnectionChangedReasonInvalidAppId              = 6
	ConnectionChangedReasonInvalidChannelName        = 7
	ConnectionChangedReasonInvalidToken              = 8
	ConnectionChangedReasonTokenExpired              = 9
	ConnectionChangedReasonRejectedByServer          = 10
	ConnectionChangedReasonSettingProxyServer        = 11
	ConnectionChangedReasonRenewToken                = 12
	ConnectionChangedReasonClientIpAddrChanged       = 13
	ConnectionChangedReasonKeepaliveTimeout          = 14
	ConnectionChangedReasonRejoinSuccess             = 15
	ConnectionChangedReasonLost                      = 16
	ConnectionChangedReasonEchoLost                  = 17
	ConnectionChangedReasonClientIpAddrChangedByUser = 18
	ConnectionChangedReasonSameUidLogin              = 19
	ConnectionChangedReasonTooManyBroadcaster        = 20
	ConnectionChangedReasonLicenseValidationFailure  = 21
	ConnectionChangedReasonStreamChannelNotAvailable = 22
	ConnectionChangedReasonInconsistentAppid         = 23
	ConnectionChangedReasonLoginSuccess              = 10001
	ConnectionChangedReasonLogout                    = 10002
	ConnectionChangedReasonPresenceNotReady          = 10003
)

// Region codes of RTMConfig.AreaCode: kept so that code written for the vendor's SDK compiles;
// rtm2 ignores them (the server is named by RTMConfig.Endpoint).
const (
	AreaCodeCN   = 0x00000001
	AreaCodeNA   = 0x00000002
	AreaCodeEU   = 0x00000004
	AreaCodeAS   = 0x00000008
	AreaCodeJP   = 0x00000010
	AreaCodeIN   = 0x00000020
	AreaCodeGLOB = 0xFFFFFFFF
	AreaCodeOC   = 0x00000040
	AreaCodeSA   = 0x00000080
	AreaCodeAF   = 0x00000100
	AreaCodeKR   = 0x00000200
	AreaCodeHKMC = 0x00000400
	AreaCodeUS   = 0x00000800
	AreaCodeOVS  = 0xFFFFFFFE
)

// MessageType of a message's payload.
type MessageType int

const (
	MessageTypeBinary MessageType = 0
	MessageTypeString MessageType = 1
)

// Message is a message received on a message channel, a topic or the user's own channel.
type Message struct {
	UserId     string // the publisher
	Type       MessageType
	Message    []byte
	CustomType string
	// Recovered (rtm2 addition: the Agora Go SDK's Message has no such field) is true for a
	// stored message (published WithMessageStoreInHistory) delivered from the channel's
	// history after a reconnect that could not resume the session (away beyond the resume
	// window, or the server restarted): published while this client was away, delivered once,
	// oldest first, before anything newer on that channel.
	Recovered bool
}

// MessageOptions are the options of Publish and Subscribe.
type MessageOptions struct {
	Type        MessageType
	CustomType  string
	ChannelType ChannelType // Publish: ChannelTypeMessage (default) or ChannelTypeUser

	Message  bool
	Metadata bool
	Presence bool
	Lock     bool
	// BeQuiet (rtm2 addition): subscribe without being listed or announced in the channel's
	// presence.
	BeQuiet bool
	// StoreInHistory (rtm2 addition): Publish stores the message in the channel's history
	// (read it back with GetMessages).
	StoreInHistory bool
}

// DefaultMessageOptions: binary messages; subscribe with messages and presence.
func DefaultMessageOptions() *MessageOptions {
	return &MessageOptions{Type: MessageTypeBinary, ChannelType: ChannelTypeMessage, Message: true, Presence: true}
}

type MessageOption func(c *MessageOptions)

// WithMessageType sets the payload's type (MessageTypeBinary by default).
func WithMessageType(t MessageType) MessageOption { return func(c *MessageOptions) { c.Type = t } }

// WithMessage: subscribe to the channel's messages.
func WithMessage(enabled bool) MessageOption { return func(c *MessageOptions) { c.Message = enabled } }

// WithMessageMetadata: subscribe to the channel's metadata (see Storage.GetChannelMetadataChan).
func WithMessageMetadata(enabled bool) MessageOption {
	return func(c *MessageOptions) { c.Metadata = enabled }
}

// WithMessagePresence: subscribe to the channel's presence (see Presence.GetPresenceChan).
func WithMessagePresence(enabled bool) MessageOption {
	return func(c *MessageOptions) { c.Presence = enabled }
}

// WithMessageLock: subscribe to the channel's locks (see Lock.GetLockChan).
func WithMessageLock(enabled bool) MessageOption { return func(c *MessageOptions) { c.Lock = enabled } }

// WithMessageBeQuiet (rtm2 addition): subscribe without being listed or announced in the
// channel's presence (RTM's beQuiet).
func WithMessageBeQuiet(enabled bool) MessageOption {
	return func(c *MessageOptions) { c.BeQuiet = enabled }
}

// WithMessageCustomType sets the message's custom type (at most 32 bytes).
func WithMessageCustomType(customType string) MessageOption {
	return func(c *MessageOptions) { c.CustomType = customType }
}

// WithMessageChannelType: ChannelTypeUser publishes to the user named by Publish's channel
// argument (peer-to-peer); ChannelTypeMessage (default) to a message channel.
func WithMessageChannelType(t ChannelType) MessageOption {
	return func(c *MessageOptions) { c.ChannelType = t }
}

// WithMessageStoreInHistory (rtm2 addition): Publish also stores the message in the channel's
// history (default false), read back with GetMessages: a message channel's, or with
// ChannelTypeUser the receiving user's. To a user who is offline the message is stored and
// Publish returns ERROR_CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED (11035) instead of
// ERROR_CHANNEL_RECEIVER_OFFLINE.
func WithMessageStoreInHistory(enabled bool) MessageOption {
	return func(c *MessageOptions) { c.StoreInHistory = enabled }
}

// StreamQOS and StreamPriority of a topic's messages.
type StreamQOS int
type StreamPriority int
type TopicEventType int

const (
	StreamQosUnordered StreamQOS = 0
	StreamQosOrdered   StreamQOS = 1

	StreamQosPriorityHighest StreamPriority = 0
	StreamQosPriorityHigh    StreamPriority = 1
	StreamQosPriorityNormal  StreamPriority = 2
	StreamQosPriorityLow     StreamPriority = 3

	TopicEventNone     TopicEventType = 0
	TopicEventSnapshot TopicEventType = 1
	TopicEventJoin     TopicEventType = 2
	TopicEventLeave    TopicEventType = 3
)

// TopicEvent: a user joined or left a topic of a joined stream channel, or (Snapshot) who
// publishes in each topic. One event per topic.
type TopicEvent struct {
	Type     TopicEventType
	Channel  string
	UserId   string
	Snapshot map[string][]string // TopicEventSnapshot: topic -> publishers
	Topic    string
}

// StreamOptions are the options of Join, JoinTopic and PublishTopic.
type StreamOptions struct {
	// Join
	Token    string
	Metadata bool
	Presence bool
	Lock     bool
	BeQuiet  bool // rtm2 addition: join without being listed or announced in presence
	// JoinTopic
	QOS       StreamQOS
	Priority  StreamPriority
	Meta      string
	SyncMedia bool
	// PublishTopic
	Type       MessageType
	SendTs     uint64
	CustomType string
}

type StreamOption func(*StreamOptions)

// WithStreamToken joins with this (stream channel) token instead of the login token.
func WithStreamToken(token string) StreamOption { return func(c *StreamOptions) { c.Token = token } }

// WithStreamMetadata: subscribe to the stream channel's metadata.
func WithStreamMetadata(enabled bool) StreamOption {
	return func(c *StreamOptions) { c.Metadata = enabled }
}

// WithStreamPresence: subscribe to the stream channel's presence.
func WithStreamPresence(enabled bool) StreamOption {
	return func(c *StreamOptions) { c.Presence = enabled }
}

// WithStreamLock: subscribe to the stream channel's locks.
func WithStreamLock(enabled bool) StreamOption { return func(c *StreamOptions) { c.Lock = enabled } }

// WithStreamBeQuiet (rtm2 addition): join without being listed or announced in the channel's
// presence (RTM's beQuiet).
func WithStreamBeQuiet(enabled bool) StreamOption {
	return func(c *StreamOptions) { c.BeQuiet = enabled }
}

// WithStreamQOS sets the delivery order of the topic's messages.
func WithStreamQOS(qos StreamQOS) StreamOption { return func(c *StreamOptions) { c.QOS = qos } }

// WithStreamPriority sets the priority of the topic's messages.
func WithStreamPriority(p StreamPriority) StreamOption {
	return func(c *StreamOptions) { c.Priority = p }
}

// WithStreamMeta sets the publisher's meta of the topic (shown in topic snapshots).
func WithStreamMeta(meta string) StreamOption { return func(c *StreamOptions) { c.Meta = meta } }

// WithStreamSyncMedia is accepted; rtm2 has no media stream to align messages with.
func WithStreamSyncMedia(enabled bool) StreamOption {
	return func(c *StreamOptions) { c.SyncMedia = enabled }
}

// WithStreamMessageType sets the payload's type (MessageTypeBinary by default).
func WithStreamMessageType(t MessageType) StreamOption { return func(c *StreamOptions) { c.Type = t } }

// WithStreamSendTs sets the message's send timestamp (with WithStreamSyncMedia).
func WithStreamSendTs(ts uint64) StreamOption { return func(c *StreamOptions) { c.SendTs = ts } }

// WithStreamCustomType sets the message's custom type (at most 32 bytes).
func WithStreamCustomType(customType string) StreamOption {
	return func(c *StreamOptions) { c.CustomType = customType }
}

// PresenceEventType of a PresenceEvent.
type PresenceEventType int

const (
	PresenceTypeNone         PresenceEventType = 0
	PresenceTypeSnapshot     PresenceEventType = 1
	PresenceTypeInterval     PresenceEventType = 2
	PresenceTypeJoinChannel  PresenceEventType = 3
	PresenceTypeLeaveChannel PresenceEventType = 4
	PresenceTypeTimeout      PresenceEventType = 5
	PresenceTypeStateChange  PresenceEventType = 6
	PresenceTypeOutOfService PresenceEventType = 7
)

// PresenceEvent of a channel subscribed or joined with presence.
type PresenceEvent struct {
	Type   PresenceEventType
	UserId string            // who joined, left, timed out or changed state
	Items  map[string]string // the user's state (join, state change)
	// Interval events
	Joined  []string
	Left    []string
	Timeout []string
	// Snapshot and interval events: user -> state
	States map[string]map[string]string
}

// UserState is a user's presence state in a channel.
type UserState struct {
	UserId string
	State  map[string]string
}

// ChannelInfo names a channel a user is in.
type ChannelInfo struct {
	Channel string
	Type    ChannelType
}

// PresenceOptions are the options of WhoNow / GetOnlineUsers.
type PresenceOptions struct {
	UserId bool
	State  bool
	Page   string
}

type PresenceOption func(*PresenceOptions)

// WithPresenceUserId: list the users' ids (default true).
func WithPresenceUserId(enabled bool) PresenceOption {
	return func(c *PresenceOptions) { c.UserId = enabled }
}

// WithPresenceState: list each user's state (default false).
func WithPresenceState(enabled bool) PresenceOption {
	return func(c *PresenceOptions) { c.State = enabled }
}

// WithPage continues from the "next page" a previous call returned.
func WithPage(page string) PresenceOption { return func(c *PresenceOptions) { c.Page = page } }

// StorageEventType of a StorageEvent.
type StorageEventType int32

const (
	StorageTypeNone     StorageEventType = 0
	StorageTypeSnapshot StorageEventType = 1
	StorageTypeSet      StorageEventType = 2
	StorageTypeUpdate   StorageEventType = 3
	StorageTypeRemove   StorageEventType = 4
)

// MetadataItem is one item of channel or user metadata.
type MetadataItem struct {
	Key    string
	Value  string
	Author string
	// Revision of a write: -1 (or 0, Go's zero value): unconditional; > 0: the write succeeds
	// only if the item has this revision (compare-and-set); RevisionAbsent: only if the item
	// does not exist yet. In what the SDK returns: the item's revision.
	Revision int64
	UpdateTs int64 // milliseconds
}

// RevisionAbsent (rtm2 addition), as MetadataItem.Revision of a write: the write succeeds only
// if the item does not exist yet (RTM's revision 0, which Go's zero value cannot mean here).
const RevisionAbsent int64 = math.MinInt64

// StorageEvent: a subscribed channel's or user's metadata changed (or its snapshot).
type StorageEvent struct {
	EventType     StorageEventType
	MajorRevision int64
	Items         map[string]*MetadataItem
}

// StorageOptions are the options of metadata writes.
type StorageOptions struct {
	MajorRev     int64
	Lock         string
	RecordTs     bool
	RecordAuthor bool
	// FencingToken of the grant of Lock held by the caller (rtm2 addition; 0 = not checked).
	FencingToken uint64
}

type StorageOption func(*StorageOptions)

// WithStorageLock: the write succeeds only while this client holds the named lock.
func WithStorageLock(lock string) StorageOption { return func(c *StorageOptions) { c.Lock = lock } }

// WithStorageMajorRev: the write succeeds only if the metadata's major revision matches
// (-1 = unconditional, the default).
func WithStorageMajorRev(rev int64) StorageOption {
	return func(c *StorageOptions) { c.MajorRev = rev }
}

// WithStorageRecordTs records the update time on the written items.
func WithStorageRecordTs(enabled bool) StorageOption {
	return func(c *StorageOptions) { c.RecordTs = enabled }
}

// WithStorageRecordAuthor records the writer's user id on the written items.
func WithStorageRecordAuthor(enabled bool) StorageOption {
	return func(c *StorageOptions) { c.RecordAuthor = enabled }
}

// WithStorageFencingToken (rtm2 addition): with WithStorageLock, the write is refused (12008)
// unless token is the lock's current grant (see LockDetail.FencingToken).
func WithStorageFencingToken(token uint64) StorageOption {
	return func(c *StorageOptions) { c.FencingToken = token }
}

// LockEventType of a LockEvent.
type LockEventType int

const (
	LockTypeNone     LockEventType = 0
	LockTypeSnapshot LockEventType = 1
	LockTypeSet      LockEventType = 2
	LockTypeRemove   LockEventType = 3
	LockTypeAcquired LockEventType = 4
	LockTypeReleased LockEventType = 5
	LockTypeExpired  LockEventType = 6
)

// LockEvent: a lock of a subscribed channel changed (or, Snapshot, every lock).
type LockEvent struct {
	Type    LockEventType
	Details []*LockDetail
}

// LockDetail describes a lock.
type LockDetail struct {
	Name  string // the lock's name
	Owner string // its owner; "" when free
	TTL   uint32 // seconds an owner keeps it after it went away
	// FencingToken of the owner's grant (rtm2 addition; 0 when free): strictly increasing
	// across grants; pass it to WithStorageFencingToken or to your own resources.
	FencingToken uint64
}
