// Types of the public rtm2 API (lib/index.js). The raw napi binding is typed in ../index.d.ts
// (generated); code numbers and enum names come from ./generated.d.ts (generated from the
// native tables).

import { EventEmitter } from 'node:events'

import type * as Generated from './generated'

export type { ErrorCodeName, ErrorCodeTable, ErrorCodeValue } from './generated'
type ErrorCodeName = Generated.ErrorCodeName
type ErrorCodeTable = Generated.ErrorCodeTable

/** An enumeration's names as constants: `{ NAME: 'NAME', ... }`. */
type Constants<T extends string> = { readonly [K in T]: K }

// The enumerations: each a union of its names (type) and the same names as constants (value,
// e.g. `LockEventType.ACQUIRED === 'ACQUIRED'`), both from the native tables.
export type ChannelType = Generated.ChannelType
export declare const ChannelType: Constants<ChannelType>
export type MessageType = Generated.MessageType
export declare const MessageType: Constants<MessageType>
export type EncryptionMode = Generated.EncryptionMode
export declare const EncryptionMode: Constants<EncryptionMode>
export type MessageQos = Generated.MessageQos
export declare const MessageQos: Constants<MessageQos>
export type MessagePriority = Generated.MessagePriority
export declare const MessagePriority: Constants<MessagePriority>
export type TopicEventType = Generated.TopicEventType
export declare const TopicEventType: Constants<TopicEventType>
export type PresenceEventType = Generated.PresenceEventType
export declare const PresenceEventType: Constants<PresenceEventType>
export type StorageType = Generated.StorageType
export declare const StorageType: Constants<StorageType>
export type StorageEventType = Generated.StorageEventType
export declare const StorageEventType: Constants<StorageEventType>
export type LockEventType = Generated.LockEventType
export declare const LockEventType: Constants<LockEventType>
export type ServiceType = Generated.ServiceType
export declare const ServiceType: Constants<ServiceType>
export type LinkState = Generated.LinkState
export declare const LinkState: Constants<LinkState>
export type LinkOperation = Generated.LinkOperation
export declare const LinkOperation: Constants<LinkOperation>
export type LinkStateChangeReason = Generated.LinkStateChangeReason
export declare const LinkStateChangeReason: Constants<LinkStateChangeReason>

// ---------------------------------------------------------------------------------------------
// Errors

/** agora-rtm-sdk's ErrorInfo: the fields of a failure (an `RTMError` has them). */
export interface ErrorInfo {
  /** Always `true`. */
  error: boolean
  /** The RTM error code (positive, e.g. 11033). */
  errorCode: number
  /** What went wrong, in words. */
  reason: string
  /** The operation that failed, by the core's name (e.g. `'publish'`, `'join_topic'`). */
  operation: string
}

/**
 * Every rtm2 operation fails with an RTMError (or a subclass) carrying the RTM code, with
 * agora-rtm-sdk's ErrorInfo fields.
 */
export declare class RTMError extends Error implements ErrorInfo {
  constructor(code: number, reason: string, operation: string, options?: ErrorOptions)
  /** The RTM error code, e.g. 11033 (identical in C, Python, Rust and Node). */
  readonly code: number
  /** Same as `code` (agora-rtm-sdk's field name). */
  readonly errorCode: number
  /** The code's name, e.g. `'CHANNEL_RECEIVER_OFFLINE'` (`'UNKNOWN'` outside the table). */
  readonly codeName: ErrorCodeName | 'UNKNOWN'
  /** What went wrong, in words. */
  readonly reason: string
  /** The operation that failed, e.g. `'publish'`, `'join_topic'`. */
  readonly operation: string
  /** Always `true` (agora-rtm-sdk's ErrorInfo field). */
  readonly error: true
  /** A short description of an RTM code (`undefined` if it is not in the table). */
  static describe(code: number): string | undefined
}

/** agora-rtm-sdk's name for the error base class. */
export { RTMError as RTMBaseError }

/** An RTMError whose code is one of the `*_TIMEOUT` codes (e.g. 10011 LOGIN_TIMEOUT). */
export declare class RTMTimeoutError extends RTMError {}

/** The RTM error codes by name, from the native table. */
export declare const ErrorCode: ErrorCodeTable

// ---------------------------------------------------------------------------------------------
// Options

/** Options of every asynchronous operation. */
export interface OperationOptions {
  /** Aborting rejects the operation with `signal.reason` and cancels it natively. */
  signal?: AbortSignal
  /**
   * Timeout of this call in ms, instead of the configured `requestTimeoutMs`. When it runs
   * out, the operation fails with its RTM timeout code (e.g. 11026 for publish).
   */
  timeoutMs?: number
}

/** Configuration of an RTM client (agora-rtm-sdk's RTMConfig plus rtm2's endpoint and tuning). */
export interface RTMConfig {
  /** `'embedded'` / `''` (default: the server inside this process), `'tcp://host:port'`, `'host:port'` or `'tls://host:port'` (port 1..65535; host an IPv4 address, `[IPv6]` or a host name; else 10014). Several servers (a cluster's nodes) as an array or one string separated by commas: the client logs in on the first that answers and, when its server dies, moves to the next one and restores its subscriptions, stream channels, topics, presence state and held locks there (docs/CLUSTER.md, "Client failover"); a bad entry or an empty array is 10014. */
  endpoint?: string | string[]
  /** Default token of `login()`. */
  token?: string
  /** Timeout of every operation, ms (100..600000, default 10000). */
  requestTimeoutMs?: number
  /** Seconds this user stays present after an unexpected disconnect (5..300, default 300; clamped into the range like the server does). */
  presenceTimeout?: number
  /** Seconds between heartbeats (5..1800, default 5; clamped into the range like the server does). */
  heartbeatInterval?: number
  /** Whether this client receives its own message-channel publishes (default true). */
  receiveOwnMessages?: boolean
  /** Capacity of each native event queue (overflow is reported by an `overflow` event). */
  eventQueueCapacity?: number
  /** The link counts as lost after this long without a frame from the server, ms. */
  pongTimeoutMs?: number
  /** First reconnect delay, ms. */
  reconnectInitialBackoffMs?: number
  /** Largest reconnect delay, ms. */
  reconnectMaxBackoffMs?: number
  /** Raw tuning parameters (`ClientConfig::set_parameters` keys, e.g. `{ request_timeout_ms: 5000 }`). */
  parameters?: Record<string, number | boolean | string>
  /** Level of the SDK's log file. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug' | 'trace'
  /** Write SDK logs to this file. */
  logFile?: string
  /** At most this many messages wait in each `messages()` iterator (default 65536). */
  iteratorQueueLimit?: number
  /**
   * End-to-end encryption of message payloads, topic messages and presence state values:
   * `'NONE'` (default), `'AES_128_GCM'` or `'AES_256_GCM'` (or the number 0, 1, 2). Every client
   * of a conversation needs the same `encryptionMode`, `cipherKey` and `salt`; what does not
   * decrypt with them is dropped and counted (`undecryptableMessages`). Another value: 10020.
   */
  encryptionMode?: EncryptionMode | number
  /** The shared secret of `encryptionMode` (a non-empty string with a mode, else 10020). */
  cipherKey?: string
  /** The shared salt of `encryptionMode`: at most 32 bytes, zero-padded (more: 10020); a string is taken as its UTF-8 bytes. */
  salt?: Uint8Array | Buffer | string
}

export interface LoginOptions extends OperationOptions {
  /** RTM token (none in development mode). */
  token?: string
}

export interface RenewTokenOptions extends OperationOptions {
  /** Renew this stream channel's token instead of the login token. */
  channelName?: string
}

export interface PublishOptions extends OperationOptions {
  /** `'MESSAGE'` (default): a message channel; `'USER'`: the channel name is a user id. */
  channelType?: 'MESSAGE' | 'USER'
  /** Application-defined type, at most 32 bytes. */
  customType?: string
  /**
   * Also keep the message in the channel's history (`rtm.history.getMessages`; a message to a
   * user: the receiver's user channel). To an offline user: stored, and the publish rejects
   * with 11035 (CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED). In a cluster: 15005 (not yet).
   */
  storeInHistory?: boolean
}

export interface SubscribeOptions extends OperationOptions {
  /** Receive messages (default true). */
  withMessage?: boolean
  /** Receive presence events (default true). */
  withPresence?: boolean
  withMetadata?: boolean
  withLock?: boolean
  /** Do not announce this user. */
  beQuiet?: boolean
}

export interface JoinChannelOptions extends OperationOptions {
  /** Stream-channel token (none in development mode). */
  token?: string
  withPresence?: boolean
  withMetadata?: boolean
  withLock?: boolean
  beQuiet?: boolean
}

export interface JoinTopicOptions extends OperationOptions {
  /** Delivery order (default `'UNORDERED'`). */
  qos?: MessageQos
  /** Priority (default `'NORMAL'`). */
  priority?: MessagePriority
  /** Publisher meta shown to others, at most 256 bytes. */
  meta?: string
  syncWithMedia?: boolean
}

export interface TopicMessageOptions extends OperationOptions {
  /** Application-defined type, at most 32 bytes. */
  customType?: string
  /** Send timestamp, ms. */
  sendTs?: number
}

export interface TopicUsersOptions extends OperationOptions {
  /** The publishers; none = every current publisher (subscribe) / the whole topic (unsubscribe). */
  users?: string[]
}

/** The channel type of presence, storage and lock calls (`'MESSAGE'` when omitted; others fail with 10019). */
export type ScopeChannelType = 'MESSAGE' | 'STREAM' | ChannelType

/** The channel type of history calls (`'MESSAGE'` when omitted; `'USER'`: this client's own user channel; others fail with 10019). */
export type HistoryChannelType = 'MESSAGE' | 'USER' | ChannelType

export interface GetMessagesOptions extends OperationOptions {
  /** Messages per page, 1..100 (0 or none: 100). */
  messageCount?: number
  /** Only messages before this server timestamp, ms (exclusive; 0 or none: from the newest). Pass a page's `newStart` for the next (older) page. */
  start?: number
  /** Only messages at or after this server timestamp, ms (inclusive; 0 or none: no bound). With `start`: start > end, at most 24 h apart (else 15002). */
  end?: number
}

export interface GetOnlineUsersOptions extends OperationOptions {
  /** List the users (default true; false with `includedState` false: the count only). */
  includedUserId?: boolean
  /** List each user's state (default false; needs `includedUserId`, else 13003). */
  includedState?: boolean
  /** The `nextPage` of an earlier answer (none: the first page). */
  page?: string
}

/**
 * A user's state to set: an object, a Map, or `[key, value]` / `{ key, value }` pairs (values
 * are strings; keys at most 32 bytes, values at most 16 KB, at most 32 pairs).
 */
export type StateInput =
  | Record<string, string>
  | Map<string, string>
  | ReadonlyArray<readonly [string, string] | { key: string; value: string }>

export interface RemoveStateOptions extends OperationOptions {
  /** The keys to remove (none or empty: every key). */
  states?: string[]
}

/** An item to write. */
export interface MetadataItem {
  key: string
  /** Ignored by removals. */
  value?: string
  /** -1 (default): no check; 0: create only (set); N: the item's revision must be N (else 12014). */
  revision?: number
}

/** Options of metadata writes. */
export interface MetadataOptions extends OperationOptions {
  /** -1 (default): no check; 0: the set must be empty (set only); N: its major revision must be N (else 12014). */
  majorRevision?: number
  /** Channel metadata: write only while holding this lock of the channel (12008). User metadata takes none (12004). */
  lockName?: string
  /** Stamp the written items with the server time (`updated`). */
  addTimeStamp?: boolean
  /** Stamp the written items with this user id (`authorUid`). */
  addUserId?: boolean
  /**
   * With `lockName`: the fencing token of your grant (`acquireLock`'s `fencingToken`); the write
   * is refused (12008) unless it is the lock's current grant. 0 / none: not checked.
   */
  fencingToken?: number
}

export interface RemoveChannelMetadataOptions extends MetadataOptions {
  /** The items (keys) to remove; none or empty: the whole set. */
  data?: MetadataItem[]
}

export interface UserMetadataOptions extends MetadataOptions {
  /** Whose metadata (default: this client). Anyone may write any user's metadata. */
  userId?: string
}

export interface RemoveUserMetadataOptions extends UserMetadataOptions {
  /** The items (keys) to remove; none or empty: the whole set. */
  data?: MetadataItem[]
}

export interface GetUserMetadataOptions extends OperationOptions {
  /** Whose metadata (default: this client). */
  userId?: string
}

export interface SetLockOptions extends OperationOptions {
  /** Seconds an owner keeps the lock after disconnecting (default 10, clamped to 10..300). */
  ttl?: number
}

export interface AcquireLockOptions extends OperationOptions {
  /**
   * Held by another user: wait in the server's queue until granted (no time limit unless
   * `timeoutMs`) instead of failing with 14007.
   */
  retry?: boolean
}

export interface MessagesOptions {
  /** Only messages of this channel (message channel, user id or stream channel name). */
  channel?: string
  /** Aborting ends the iteration by rejecting with `signal.reason`. */
  signal?: AbortSignal
}

// ---------------------------------------------------------------------------------------------
// Events and results

/** A received message. */
export interface MessageEvent {
  channelType: ChannelType
  /** The channel; for USER messages the receiving user's id. */
  channelName: string
  /** The topic (STREAM messages), else `''`. */
  topicName: string
  messageType: MessageType
  /** A string for STRING messages, a Uint8Array for BINARY ones. */
  message: string | Uint8Array
  /** Application-defined type (`''` = none). */
  customType: string
  publisher: string
  /** Server time, ms since the epoch. */
  timestamp: number
  /**
   * An rtm2 addition (not in agora-rtm-sdk): `true` when the message was delivered from the
   * channel's history after a reconnect that could not resume (the session expired or the
   * server restarted) — a stored message published while the client was away, delivered oldest
   * first before anything newer. The `linkState` CONNECTED event (`isResumed` false) comes first.
   */
  recovered: boolean
}

export interface PublisherInfo {
  publisherUserId: string
  publisherMeta: string
}

export interface TopicInfo {
  topicName: string
  publishers: PublisherInfo[]
  totalPublisher: number
}

/** A topic event of a stream channel. */
export interface TopicEvent {
  eventType: TopicEventType
  channelName: string
  /** The user that joined or left (`''` for SNAPSHOT). */
  publisher: string
  topicInfos: TopicInfo[]
  totalTopics: number
  timestamp: number
}

/** A link-state change. */
export interface LinkStateEvent {
  currentState: LinkState
  previousState: LinkState
  /** `'MESSAGE'`: the client's connection; `'STREAM'`: one stream channel (`channelName`). */
  serviceType: ServiceType
  operation: LinkOperation
  /** Why, by number, e.g. `27` (`reason_number` in C and Python). */
  reasonNumber: number
  /** Why, by name, e.g. `'SAME_UID_LOGIN'` (`reason_name` in C and Python). */
  reasonName: LinkStateChangeReason
  /** Why, in words; may be `''` (`reason_text` in C and Python). */
  reasonText: string
  /** agora-rtm-sdk's field: the same as `reasonName`. */
  reasonCode: LinkStateChangeReason
  /** agora-rtm-sdk's field: the same as `reasonText`. */
  reason: string
  /** The stream channel (STREAM only), else `''`. */
  channelName: string
  affectedChannels: string[]
  unrestoredChannels: string[]
  isResumed: boolean
  timestamp: number
}

/** A user and its state in a channel. */
export interface UserState {
  userId: string
  states: Record<string, string>
  statesCount: number
}

/** Users of one kind of change during a presence interval. */
export interface IntervalUsers {
  users: string[]
  userCount: number
}

/** The aggregated changes of one presence interval. */
export interface PresenceInterval {
  join: IntervalUsers
  leave: IntervalUsers
  timeout: IntervalUsers
  /** The full state of every user whose state changed. */
  userStateList: UserState[]
  /** Users present at the end of the interval. */
  totalOccupancy: number
}

/** A presence event (subscribers / joiners with `withPresence`). */
export interface PresenceEvent {
  eventType: PresenceEventType
  /** `'MESSAGE'` or `'STREAM'`. */
  channelType: ChannelType
  channelName: string
  /** The user the event is about (`''` for SNAPSHOT and INTERVAL). */
  publisher: string
  /** REMOTE_STATE_CHANGED: the publisher's full state (else empty). */
  stateChanged: Record<string, string>
  /** INTERVAL only (else null). */
  interval: PresenceInterval | null
  /** SNAPSHOT: everyone present, this client included (else empty). */
  snapshot: UserState[]
  /** Server time, ms since the epoch. */
  timestamp: number
}

/** One item of a metadata set. */
export interface MetadataDetail {
  value: string
  /** The major revision of the write that wrote it. */
  revision: number
  /** When it was written, ms (0 unless written with `addTimeStamp`). */
  updated: number
  /** Who wrote it (`''` unless written with `addUserId`). */
  authorUid: string
}

/** A metadata set. */
export interface StorageData {
  totalCount: number
  /** Incremented by every write of the set (0: never written). */
  majorRevision: number
  /** The items by key. */
  metadata: Record<string, MetadataDetail>
}

/** A storage event: the whole set when subscribing (SNAPSHOT) and after each change (UPDATE). */
export interface StorageEvent {
  /** `'SNAPSHOT'` or `'UPDATE'` (full-data mode). */
  eventType: StorageEventType
  storageType: StorageType
  /** `'MESSAGE'` or `'STREAM'` for channel metadata, `'NONE'` for user metadata. */
  channelType: ChannelType
  /** The channel, or the user id for user metadata. */
  channelName: string
  /** Who wrote (`''` for SNAPSHOT). */
  publisher: string
  data: StorageData
  timestamp: number
}

/** A lock of a channel. */
export interface LockDetail {
  lockName: string
  /** Its owner (`''` = free). */
  owner: string
  /** Seconds an owner keeps it after disconnecting. */
  ttl: number
  /** The fencing token of the owner's grant (0 when free). */
  fencingToken: number
}

/** A lock event (subscribers / joiners with `withLock`; EXPIRED also to the former owner). */
export interface LockEvent {
  eventType: LockEventType
  channelType: ChannelType
  channelName: string
  /** The lock (`''` for SNAPSHOT). */
  lockName: string
  ttl: number
  /** The new owner for ACQUIRED, the former one for RELEASED / EXPIRED. */
  owner: string
  /** Who caused the event. */
  publisher: string
  /** SNAPSHOT: every lock of the channel (else empty). */
  snapshot: LockDetail[]
  timestamp: number
  /** ACQUIRED: the new grant's fencing token; RELEASED / EXPIRED / REMOVED: the ended grant's (0 if free); 0 for SET and SNAPSHOT. */
  fencingToken: number
}

/** Events were dropped because a bounded queue was full. */
export interface OverflowEvent {
  dropped: number
  /** `'client'`: the native event queue; `'subscription'`: a subscription's queue; `'iterator'`: `messages()` queues. */
  source: 'client' | 'subscription' | 'iterator'
  channelName?: string
}

/** What a `token` event is about: `'WILL_EXPIRE'` (rtm2 emits only this one). */
export type TokenEventType = 'WILL_EXPIRE' | 'READ_PERMISSION_REVOKED'

/**
 * agora-rtm-sdk's TokenEvent: a token expires soon (emitted with `tokenPrivilegeWillExpire`,
 * the server's notice `--token-notice-secs` before the expiry). Renew it with `renewToken`.
 */
export interface TokenEvent {
  /**
   * `'WILL_EXPIRE'`. (`'READ_PERMISSION_REVOKED'` is agora-rtm-sdk's, for tokens with
   * per-channel privileges, which rtm2 tokens do not carry: never emitted.)
   */
  eventType: TokenEventType
  /** In words, which token expires and how to renew it. */
  reason: string
  /**
   * What the token covers: the login token, the subscribed message channels (`streamChannels`
   * empty); a stream channel's token, that channel (`messageChannels` empty).
   */
  affectedResources: {
    messageChannels: string[]
    streamChannels: string[]
  }
  /**
   * When the notice reached JavaScript, ms since the epoch, by this machine's clock (the
   * server's notice carries no time).
   */
  timestamp: number
}

/** The events of an RTM client and their listener arguments. */
export interface RTMEventMap {
  message: [event: MessageEvent]
  linkState: [event: LinkStateEvent]
  topic: [event: TopicEvent]
  presence: [event: PresenceEvent]
  storage: [event: StorageEvent]
  lock: [event: LockEvent]
  /** The login token (`''`) or a stream channel's token (its name) expires soon. */
  tokenPrivilegeWillExpire: [channelName: string]
  /** The same notice as `tokenPrivilegeWillExpire`, in agora-rtm-sdk's TokenEvent shape. */
  token: [event: TokenEvent]
  overflow: [event: OverflowEvent]
  /** A listener threw. */
  error: [error: unknown]
}

export type RTMEventName = keyof RTMEventMap

// Responses, by agora-rtm-sdk 2.3's names. `timestamp` is the server's time of its answer, ms
// since the epoch: every call that asks the server has one, those that return data too. Older
// rtm2 names stay as aliases.

/** The answer of `login()`. */
export interface LoginResponse {
  timestamp: number
}

/**
 * The answer of `logout()`: the server's time, or this machine's when there was no server to
 * ask (not connected, or the client closed).
 */
export interface LogoutResponse {
  timestamp: number
}

/** The answer of `renewToken()`: `channelName` when it renewed a stream channel's token. */
export interface RenewTokenResponse {
  timestamp: number
  channelName?: string
}

/**
 * The answer of `publish()`: `timestamp` is the server's time of the acknowledgement that
 * covered the message (publishes are acknowledged in batches), not the message's own
 * timestamp (the one its `message` events and history carry).
 */
export interface PublishResponse {
  timestamp: number
  /** The channel, or for a `'USER'` publish the user id. */
  channelName: string
}

/** The answer of `subscribe()` (`RTMSubscription` has these fields, and is iterable). */
export interface SubscribeResponse {
  channelName: string
  timestamp: number
}

export interface UnsubscribeResponse {
  timestamp: number
  channelName: string
}

/** The answer of a stream channel's `join()`: the topics and publishers present. */
export interface JoinChannelResponse {
  channelName: string
  topicInfos: TopicInfo[]
  timestamp: number
}

export interface LeaveChannelResponse {
  timestamp: number
  channelName: string
}

/** The answer of the topic calls of a stream channel. */
export interface TopicOperationResponse {
  timestamp: number
  channelName: string
  topicName: string
}
export type JoinTopicResponse = TopicOperationResponse
export type LeaveTopicResponse = TopicOperationResponse
export type PublishTopicMessageResponse = TopicOperationResponse
export type UnsubscribeTopicResponse = TopicOperationResponse

/** Why `subscribeTopic` could not subscribe a user. */
export interface SubscribedFailedReason {
  user: string
  /** Per-user code: 6 INVALID_REMOTE_USER (e.g. an invalid user id), 20003 SUB_USER_EXCEED_LIMITATION (more than 64 publishers). */
  errorCode: number
  reason: string
}
/** The former name of `SubscribedFailedReason` (whose fields were `userId` and `code`). */
export type FailedUser = SubscribedFailedReason

export interface SubscribeTopicResponse extends TopicOperationResponse {
  /** The users subscribed to (already subscribed ones included). */
  succeedUsers: string[]
  /** The users not subscribed to; why: `failedDetails`, in the same order. */
  failedUsers: string[]
  failedDetails: SubscribedFailedReason[]
}

/** The answer of `getSubscribedUserList()` (synchronous: no server answer, no `timestamp`). */
export interface GetSubscribedUserListResponse {
  channelName: string
  topicName: string
  /** The publishers this client subscribed to in the topic (agora-rtm-sdk's name). */
  subscribed: string[]
  /** The same list as `subscribed` (rtm2's earlier name). */
  users: string[]
  totalUser: number
}

/** A channel of presence, storage and lock answers. */
interface ChannelScope {
  channelName: string
  channelType: ChannelType
}

/** The answer of `setState()`: the server's time, or this machine's when the state was only kept (not in the channel yet). */
export interface SetStateResponse extends ChannelScope {
  timestamp: number
}
/** The answer of `removeState()`: the server's time, or this machine's when only the kept state changed. */
export type RemoveStateResponse = SetStateResponse
/** The former name of `SetStateResponse` / `RemoveStateResponse`. */
export type PresenceChannelResponse = SetStateResponse

export interface GetOnlineUsersResponse extends ChannelScope {
  /** Users present (all pages). */
  totalOccupancy: number
  /** This page's users. */
  occupants: UserState[]
  /** Pass as `page` for the next page; `''` on the last page. */
  nextPage: string
  timestamp: number
}
export type WhoNowResponse = GetOnlineUsersResponse

export interface ChannelInfo {
  channelName: string
  channelType: ChannelType
}

export interface GetUserChannelsResponse {
  channels: ChannelInfo[]
  totalChannel: number
  timestamp: number
}
export type WhereNowResponse = GetUserChannelsResponse

export interface GetStateResponse extends ChannelScope, UserState {
  timestamp: number
}

/** The answer of a channel-metadata write. */
export interface SetChannelMetadataResponse extends ChannelScope {
  /** Items in the set after the write. */
  totalCount: number
  /** The set's new major revision (also the revision of every item written). */
  majorRevision: number
  timestamp: number
}
export type UpdateChannelMetadataResponse = SetChannelMetadataResponse
export type RemoveChannelMetadataResponse = SetChannelMetadataResponse
/** The former name of `SetChannelMetadataResponse`. */
export type ChannelMetadataResponse = SetChannelMetadataResponse

export interface GetChannelMetadataResponse extends StorageData, ChannelScope {
  timestamp: number
}

/** The answer of a user-metadata write. */
export interface SetUserMetadataResponse {
  userId: string
  totalCount: number
  majorRevision: number
  timestamp: number
}
export type UpdateUserMetadataResponse = SetUserMetadataResponse
export type RemoveUserMetadataResponse = SetUserMetadataResponse
/** The former name of `SetUserMetadataResponse`. */
export type UserMetadataResponse = SetUserMetadataResponse

export interface GetUserMetadataResponse extends StorageData {
  userId: string
  timestamp: number
}

/** The answer of `subscribeUserMetadata()` / `unsubscribeUserMetadata()`. */
export interface SubscribeUserMetaResponse {
  userId: string
  timestamp: number
}
export type UnsubscribeUserMetaResponse = SubscribeUserMetaResponse
/** The former name of `SubscribeUserMetaResponse`. */
export type UserMetadataSubscriptionResponse = SubscribeUserMetaResponse

/** A lock of a channel, as lock answers name it. */
interface LockScope extends ChannelScope {
  lockName: string
}

/** The answer of `setLock()`, `removeLock()`, `releaseLock()`, `revokeLock()`. */
export interface SetLockResponse extends LockScope {
  timestamp: number
}
export type RemoveLockResponse = SetLockResponse
export type ReleaseLockResponse = SetLockResponse
export type RevokeLockResponse = SetLockResponse
/** The former name of `SetLockResponse` and the others. */
export type LockResponse = SetLockResponse

/** The answer of `acquireLock()`: `timestamp` is the server's time of the grant. */
export interface AcquireLockResponse extends LockScope {
  /**
   * The grant's fencing token: strictly increasing from grant to grant (also across a server
   * restart with a data directory). Send it with every write to a resource the lock guards and
   * have the resource reject a token lower than the highest it has seen.
   */
  fencingToken: number
  timestamp: number
}

/** A stored message (`rtm.history.getMessages`). */
export interface HistoryMessage {
  /** A string for STRING messages, a Uint8Array for BINARY ones (decrypted, when the client encrypts). */
  message: string | Uint8Array
  messageType: MessageType
  /** Application-defined type (`''` = none). */
  customType: string
  publisher: string
  /** The server's timestamp, ms since the epoch (unique within the channel's history; the delivered message event carries the same). */
  timestamp: number
}

/** One page of a channel's history, newest first. */
export interface GetHistoryMessagesResponse {
  messageList: HistoryMessage[]
  /** `messageList.length`. */
  count: number
  /** 0: nothing older; else the `start` of the next (older) page. */
  newStart: number
  /** The server's time of the answer (not a message's: those are in `messageList`). */
  timestamp: number
}

export interface GetLockResponse {
  channelName: string
  channelType: ChannelType
  totalLocks: number
  lockDetails: LockDetail[]
  timestamp: number
}

// ---------------------------------------------------------------------------------------------
// Classes

/** Presence (`rtm.presence`): who is in a channel, where a user is, per-channel user state. */
export declare class RTMPresence {
  private constructor()
  /** Who is present in a channel, one page at a time (no need to be in the channel). */
  getOnlineUsers(channelName: string, channelType?: ScopeChannelType, options?: GetOnlineUsersOptions): Promise<GetOnlineUsersResponse>
  /** Alias of `getOnlineUsers`. */
  whoNow(channelName: string, channelType?: ScopeChannelType, options?: GetOnlineUsersOptions): Promise<WhoNowResponse>
  /** The channels a user is present in (`''`: this client). */
  getUserChannels(userId: string, options?: OperationOptions): Promise<GetUserChannelsResponse>
  /** Alias of `getUserChannels`. */
  whereNow(userId: string, options?: OperationOptions): Promise<WhereNowResponse>
  /** Sets keys of this client's state in a channel; kept and applied on subscribe / join when not in it yet. */
  setState(channelName: string, channelType: ScopeChannelType | undefined, state: StateInput, options?: OperationOptions): Promise<SetStateResponse>
  /** A user's state in a channel (13011 if not present there). */
  getState(userId: string, channelName: string, channelType?: ScopeChannelType, options?: OperationOptions): Promise<GetStateResponse>
  /** Removes keys of this client's state in a channel (no `states`: all of them). */
  removeState(channelName: string, channelType?: ScopeChannelType, options?: RemoveStateOptions): Promise<RemoveStateResponse>
}

/** Storage (`rtm.storage`): channel and user metadata with revisions. */
export declare class RTMStorage {
  private constructor()
  setChannelMetadata(channelName: string, channelType: ScopeChannelType | undefined, data: MetadataItem[], options?: MetadataOptions): Promise<SetChannelMetadataResponse>
  updateChannelMetadata(channelName: string, channelType: ScopeChannelType | undefined, data: MetadataItem[], options?: MetadataOptions): Promise<UpdateChannelMetadataResponse>
  /** Removes `options.data` (by key); none: the whole set. */
  removeChannelMetadata(channelName: string, channelType?: ScopeChannelType, options?: RemoveChannelMetadataOptions): Promise<RemoveChannelMetadataResponse>
  getChannelMetadata(channelName: string, channelType?: ScopeChannelType, options?: OperationOptions): Promise<GetChannelMetadataResponse>
  setUserMetadata(data: MetadataItem[], options?: UserMetadataOptions): Promise<SetUserMetadataResponse>
  updateUserMetadata(data: MetadataItem[], options?: UserMetadataOptions): Promise<UpdateUserMetadataResponse>
  /** Removes `options.data` (by key); none: the whole set. */
  removeUserMetadata(options?: RemoveUserMetadataOptions): Promise<RemoveUserMetadataResponse>
  getUserMetadata(options?: GetUserMetadataOptions): Promise<GetUserMetadataResponse>
  /** A storage SNAPSHOT event now, then an UPDATE per change (at most 50 users, 12017). */
  subscribeUserMetadata(userId: string, options?: OperationOptions): Promise<SubscribeUserMetaResponse>
  /** 12015 if not subscribed. */
  unsubscribeUserMetadata(userId: string, options?: OperationOptions): Promise<UnsubscribeUserMetaResponse>
}

/** Locks (`rtm.lock`), scoped to a channel name and type. */
export declare class RTMLock {
  private constructor()
  /** Defines a lock (14004 if it exists). */
  setLock(channelName: string, channelType: ScopeChannelType | undefined, lockName: string, options?: SetLockOptions): Promise<SetLockResponse>
  /** Every lock of the channel, with its owner. */
  getLock(channelName: string, channelType?: ScopeChannelType, options?: OperationOptions): Promise<GetLockResponse>
  /** The same as `getLock` (agora-rtm-sdk's name), by the name of the other bindings (`get_locks`). */
  getLocks(channelName: string, channelType?: ScopeChannelType, options?: OperationOptions): Promise<GetLockResponse>
  /** Removes a lock (14008 if missing); waiting acquisitions fail with 14008. */
  removeLock(channelName: string, channelType: ScopeChannelType | undefined, lockName: string, options?: OperationOptions): Promise<RemoveLockResponse>
  /** Takes a lock: 14007 if held by another user, unless `retry` (then waits in the server's queue). */
  acquireLock(channelName: string, channelType: ScopeChannelType | undefined, lockName: string, options?: AcquireLockOptions): Promise<AcquireLockResponse>
  /** Releases a lock this client holds (14006 otherwise). */
  releaseLock(channelName: string, channelType: ScopeChannelType | undefined, lockName: string, options?: OperationOptions): Promise<ReleaseLockResponse>
  /** Frees a lock held by `owner` (14006 if `owner` does not hold it). */
  revokeLock(channelName: string, channelType: ScopeChannelType | undefined, lockName: string, owner: string, options?: OperationOptions): Promise<RevokeLockResponse>
}

/**
 * History (`rtm.history`): messages published with `storeInHistory: true`. The server keeps the
 * newest 1,000 per channel for 7 days at most (its defaults); durable with `rtm2 serve
 * --data-dir`; not yet in a cluster (15005).
 */
export declare class RTMHistory {
  private constructor()
  /**
   * A page of the stored messages of a message channel, or with `'USER'` of this client's own
   * user channel (another user's: 15004), newest first. Messages that do not decrypt with this
   * client's encryption settings are left out.
   */
  getMessages(channelName: string, channelType?: HistoryChannelType, options?: GetMessagesOptions): Promise<GetHistoryMessagesResponse>
}

/**
 * The messages of one subscribed channel (`rtm.subscribe()`): iterate with `for await`. Also
 * agora-rtm-sdk's SubscribeResponse: `const { channelName, timestamp } = await rtm.subscribe(…)`.
 */
export declare class RTMSubscription implements AsyncIterable<MessageEvent>, SubscribeResponse {
  private constructor()
  readonly channelName: string
  /** The server's time of the subscribe's answer, ms since the epoch. */
  readonly timestamp: number
  messages(opts?: { signal?: AbortSignal }): AsyncGenerator<MessageEvent, void, undefined>
  [Symbol.asyncIterator](): AsyncGenerator<MessageEvent, void, undefined>
  /** Stops local delivery (not the server subscription). */
  close(): void
  unsubscribe(opts?: OperationOptions): Promise<UnsubscribeResponse>
}

/** A stream channel (`rtm.createStreamChannel(name)`). */
export declare class RTMStreamChannel {
  private constructor()
  readonly channelName: string
  isJoined(): boolean
  joinedTopics(): string[]
  join(options?: JoinChannelOptions): Promise<JoinChannelResponse>
  leave(opts?: OperationOptions): Promise<LeaveChannelResponse>
  joinTopic(topicName: string, options?: JoinTopicOptions): Promise<JoinTopicResponse>
  leaveTopic(topicName: string, opts?: OperationOptions): Promise<LeaveTopicResponse>
  publishTopicMessage(topicName: string, message: string | Uint8Array, options?: TopicMessageOptions): Promise<PublishTopicMessageResponse>
  subscribeTopic(topicName: string, options?: TopicUsersOptions): Promise<SubscribeTopicResponse>
  unsubscribeTopic(topicName: string, options?: TopicUsersOptions): Promise<UnsubscribeTopicResponse>
  /**
   * The publishers this client subscribed to in a topic — synchronous (the client knows them),
   * as in agora-rtm-sdk and every rtm2 binding; `subscribed` (= `users`) is empty when it subscribed to none there.
   * Throws RTMError 11001 when the channel is not joined.
   */
  getSubscribedUserList(topicName: string): GetSubscribedUserListResponse
  /** Renews this channel's token (also `rtm.renewToken(token, { channelName })`). */
  renewToken(token: string, opts?: OperationOptions): Promise<RenewTokenResponse & { channelName: string }>
  [Symbol.asyncDispose](): Promise<void>
}

/** An rtm2 client: one user of one app. */
export declare class RTM extends EventEmitter<RTMEventMap> {
  constructor(appId: string, userId: string, config?: RTMConfig)
  readonly userId: string
  /** The state of the message connection. */
  readonly linkState: LinkState
  /**
   * Where the client is connected, or was last (`nodeId` `''` outside a cluster; a client given
   * several endpoints fails over between them); null before the first connection.
   */
  readonly connectedTo: { endpoint: string; nodeId: string } | null
  /**
   * Messages dropped because they did not decrypt with this client's encryption settings
   * (another key, salt or mode, plain to an encrypting client or the reverse, tampered bytes);
   * never delivered.
   */
  readonly undecryptableMessages: number
  readonly presence: RTMPresence
  readonly storage: RTMStorage
  readonly lock: RTMLock
  readonly history: RTMHistory

  addEventListener<K extends RTMEventName>(eventName: K, listener: (...args: RTMEventMap[K]) => void): void
  removeEventListener<K extends RTMEventName>(eventName: K, listener: (...args: RTMEventMap[K]) => void): void
  /** Every message (or those of `channel`) until logout/close, the client failing (FAILED), `break` or `signal`. */
  messages(opts?: MessagesOptions): AsyncIterableIterator<MessageEvent>

  login(options?: LoginOptions): Promise<LoginResponse>
  logout(): Promise<LogoutResponse>
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
  renewToken(token: string, options?: RenewTokenOptions): Promise<RenewTokenResponse>

  publish(channelName: string, message: string | Uint8Array, options?: PublishOptions): Promise<PublishResponse>
  subscribe(channelName: string, options?: SubscribeOptions): Promise<RTMSubscription>
  unsubscribe(channelName: string, opts?: OperationOptions): Promise<UnsubscribeResponse>
  subscribedChannels(): string[]

  createStreamChannel(channelName: string): RTMStreamChannel

  setParameters(parameters: Record<string, number | boolean | string> | string): void
  getParameters(): Record<string, number | boolean | string>
}

// ---------------------------------------------------------------------------------------------
// Functions

/** An RTM login token (AccessToken2) for `userId`, valid `expireSecs` from now. */
export declare function buildToken(appId: string, appCertificate: string, userId: string, expireSecs: number): string

/** A stream-channel token for `channelName` and `userId`, valid `expireSecs` from now. */
export declare function buildStreamToken(
  appId: string,
  appCertificate: string,
  channelName: string,
  userId: string,
  expireSecs: number,
): string

/** Routes SDK log records at `level` and above to `handler`, or stops with `null`. */
export declare function setLogHandler(
  level: 'error' | 'warn' | 'info' | 'debug' | 'trace',
  handler: ((level: string, target: string, message: string) => void) | null,
): void

/** Version of the SDK. */
export declare const VERSION: string

/** The names of the SDK's enumerations, from the native tables. */
export declare function enumNames(): {
  channelType: ChannelType[]
  messageType: MessageType[]
  encryptionMode: EncryptionMode[]
  messageQos: MessageQos[]
  messagePriority: MessagePriority[]
  topicEventType: TopicEventType[]
  presenceEventType: PresenceEventType[]
  storageType: StorageType[]
  storageEventType: StorageEventType[]
  lockEventType: LockEventType[]
  serviceType: ServiceType[]
  linkState: LinkState[]
  linkOperation: LinkOperation[]
  linkStateChangeReason: LinkStateChangeReason[]
}

/** The RTM error-code table. */
export declare function errorCodes(): Array<{ code: number; name: ErrorCodeName; message: string }>
