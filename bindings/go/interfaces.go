package rtm2

// RTMClient is a client of an rtm2 server (the Agora RTM 2 Go SDK's interface).
type RTMClient interface {
	// Login logs in with token ("" when the server runs without app certificates). It returns
	// the connection events, the token-will-expire events ("" = the login token, else the
	// stream channel whose token expires) and the peer-to-peer messages sent to this user.
	Login(token string) (<-chan *ConnectionEvent, <-chan string, <-chan *Message, error)
	// Logout ends the session: every subscription, stream channel, lock ownership and
	// presence state ends with it.
	Logout() error
	// SetParameters sets rtm2 parameters (see docs/go.md), and "endpoint" before Login.
	SetParameters(params map[string]interface{}) error
	// GetParameters returns the parameters in effect.
	GetParameters() map[string]interface{}
	// RenewToken replaces the login token.
	RenewToken(token string) error

	Storage() Storage
	Lock() Lock
	Presence() Presence

	// Publish publishes a message to a message channel, or (WithMessageChannelType(
	// ChannelTypeUser)) to the user named by channel.
	Publish(channel string, message []byte, opts ...MessageOption) error
	// Subscribe subscribes to a message channel; its messages arrive on the returned channel
	// (the same one for every Subscribe of that channel).
	Subscribe(channel string, opts ...MessageOption) (chan *Message, error)
	// Unsubscribe ends the subscription (and its presence, metadata and lock events).
	Unsubscribe(channel string) error

	// StreamChannel returns the stream channel of that name (the same one for the same name).
	StreamChannel(channel string) StreamChannel
}

// StreamChannel is a stream channel: topics, their publishers and subscribers.
type StreamChannel interface {
	// Join joins the channel; it returns who publishes in each topic, the topic events and
	// the channel's token-will-expire events.
	Join(opts ...StreamOption) (map[string][]string, <-chan *TopicEvent, <-chan string, error)
	Leave() error
	ChannelName() string
	// JoinTopic makes this client a publisher of the topic.
	JoinTopic(topic string, opts ...StreamOption) error
	// PublishTopic publishes to a joined topic.
	PublishTopic(topic string, message []byte, opts ...StreamOption) error
	LeaveTopic(topic string) error
	// SubscribeTopic subscribes to publishers of a topic (all, when userIds is empty); their
	// messages arrive on the returned channel (one per topic).
	SubscribeTopic(topic string, userIds []string) (<-chan *Message, error)
	UnsubscribeTopic(topic string, userIds []string) error
	GetSubscribedUsers(topic string) ([]string, error)
	RenewToken(token string) error
}

// Presence: who is in which channel, with which state.
type Presence interface {
	// GetPresenceChan returns the channel's users (its first snapshot, waited for) and its
	// presence events; the channel must be subscribed or joined with presence.
	GetPresenceChan(channel string, channelType ChannelType) (map[string]*UserState, <-chan *PresenceEvent, error)
	WhoNow(channel string, channelType ChannelType, opts ...PresenceOption) (map[string]*UserState, string, error)
	WhereNow(userId string) ([]*ChannelInfo, error)
	GetOnlineUsers(channel string, channelType ChannelType, opts ...PresenceOption) (map[string]*UserState, string, error)
	GetUserChannels(userId string) ([]*ChannelInfo, error)
	SetState(channel string, channelType ChannelType, data map[string]string) error
	RemoveState(channel string, channelType ChannelType, keys []string) error
	GetState(channel string, channelType ChannelType, userId string) (map[string]string, error)
}

// Storage: channel and user metadata.
type Storage interface {
	// GetChannelMetadataChan returns the channel's metadata (its first snapshot, waited for)
	// and its storage events; the channel must be subscribed or joined with metadata.
	GetChannelMetadataChan(channel string, channelType ChannelType) (map[string]*MetadataItem, <-chan *StorageEvent, error)
	SetChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error
	UpdateChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error
	RemoveChannelMetadata(channel string, channelType ChannelType, data map[string]*MetadataItem, opts ...StorageOption) error
	GetChannelMetadata(channel string, channelType ChannelType) (int64, map[string]*MetadataItem, error)
	SetUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error
	UpdateUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error
	RemoveUserMetadata(userId string, data map[string]*MetadataItem, opts ...StorageOption) error
	GetUserMetadata(userId string) (int64, map[string]*MetadataItem, error)
	// SubscribeUserMetadata returns the user's metadata and its later changes.
	SubscribeUserMetadata(userId string) (map[string]*MetadataItem, <-chan *StorageEvent, error)
	UnsubscribeUserMetadata(userId string) error
}

// Lock: named locks of a channel.
type Lock interface {
	// GetLockChan returns the channel's locks (its first snapshot, waited for) and its lock
	// events; the channel must be subscribed or joined with locks.
	GetLockChan(channel string, channelType ChannelType) (map[string]*LockDetail, <-chan *LockEvent, error)
	Set(channel string, channelType ChannelType, name string, ttl uint32) error
	Get(channel string, channelType ChannelType) (map[string]*LockDetail, error)
	Remove(channel string, channelType ChannelType, name string) error
	// Acquire acquires the lock; the returned channel receives nil once it is this client's,
	// or the error. With retry, a held lock is waited for (in queue order).
	Acquire(channel string, channelType ChannelType, name string, retry bool) <-chan error
	Release(channel string, channelType ChannelType, name string) error
	Revoke(channel string, channelType ChannelType, name string, owner string) error
}
