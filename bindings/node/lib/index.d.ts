// Types of the public rtm2 API (lib/index.js). The raw napi binding is typed in ../index.d.ts
// (generated); code numbers and enum names come from ./generated.d.ts (generated from the
// native tables).

import { EventEmitter } from 'node:events'

import type {
  ChannelType,
  ErrorCodeName,
  ErrorCodeTable,
  LinkOperation,
  LinkState,
  LinkStateChangeReason,
  MessagePriority,
  MessageQos,
  MessageType,
  ServiceType,
  TopicEventType,
} from './generated'

export type {
  ChannelType,
  ErrorCodeName,
  ErrorCodeTable,
  ErrorCodeValue,
  LinkOperation,
  LinkState,
  LinkStateChangeReason,
  MessagePriority,
  MessageQos,
  MessageType,
  ServiceType,
  TopicEventType,
} from './generated'

// ---------------------------------------------------------------------------------------------
// Errors

/** Every rtm2 operation fails with an RTMError (or a subclass) carrying the RTM code. */
export declare class RTMError extends Error {
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
  /** `'embedded'` / `''` (default: the server inside this process), `'tcp://host:port'` or `'host:port'`. */
  endpoint?: string
  /** Default token of `login()`. */
  token?: string
  /** Timeout of every operation, ms (100..600000, default 10000). */
  requestTimeoutMs?: number
  /** Seconds this user stays present after an unexpected disconnect (5..300). */
  presenceTimeout?: number
  /** Seconds between heartbeats (1..1800, default 5). */
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
  parameters?: Record<string, number | boolean>
  /** Level of the SDK's log file. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug' | 'trace'
  /** Write SDK logs to this file. */
  logFile?: string
  /** At most this many messages wait in each `messages()` iterator (default 65536). */
  iteratorQueueLimit?: number
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
  /** Store in history (not available: fails with 15005). */
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
  reasonCode: LinkStateChangeReason
  /** Details in words. */
  reason: string
  /** The stream channel (STREAM only), else `''`. */
  channelName: string
  affectedChannels: string[]
  unrestoredChannels: string[]
  isResumed: boolean
  timestamp: number
}

/** Events were dropped because a bounded queue was full. */
export interface OverflowEvent {
  dropped: number
  /** `'client'`: the native event queue; `'subscription'`: a subscription's queue; `'iterator'`: `messages()` queues. */
  source: 'client' | 'subscription' | 'iterator'
  channelName?: string
}

/** The events of an RTM client and their listener arguments. */
export interface RTMEventMap {
  message: [event: MessageEvent]
  linkState: [event: LinkStateEvent]
  topic: [event: TopicEvent]
  /** The login token (`''`) or a stream channel's token (its name) expires soon. */
  tokenPrivilegeWillExpire: [channelName: string]
  overflow: [event: OverflowEvent]
  /** A listener threw. */
  error: [error: unknown]
}

export type RTMEventName = keyof RTMEventMap

export interface JoinChannelResponse {
  channelName: string
  topicInfos: TopicInfo[]
}

export interface FailedUser {
  userId: string
  /** Per-user code (6 INVALID_REMOTE_USER, 20003 SUB_USER_EXCEED_LIMITATION). */
  code: number
  reason: string
}

export interface SubscribeTopicResponse {
  channelName: string
  topicName: string
  succeedUsers: string[]
  failedUsers: FailedUser[]
}

export interface GetSubscribedUserListResponse {
  channelName: string
  topicName: string
  users: string[]
  totalUser: number
}

// ---------------------------------------------------------------------------------------------
// Classes

/** The messages of one subscribed channel (`rtm.subscribe()`): iterate with `for await`. */
export declare class RTMSubscription implements AsyncIterable<MessageEvent> {
  private constructor()
  readonly channelName: string
  messages(opts?: { signal?: AbortSignal }): AsyncGenerator<MessageEvent, void, undefined>
  [Symbol.asyncIterator](): AsyncGenerator<MessageEvent, void, undefined>
  /** Stops local delivery (not the server subscription). */
  close(): void
  unsubscribe(opts?: OperationOptions): Promise<void>
}

/** A stream channel (`rtm.createStreamChannel(name)`). */
export declare class RTMStreamChannel {
  private constructor()
  readonly channelName: string
  isJoined(): boolean
  joinedTopics(): string[]
  join(options?: JoinChannelOptions): Promise<JoinChannelResponse>
  leave(opts?: OperationOptions): Promise<void>
  joinTopic(topicName: string, options?: JoinTopicOptions): Promise<void>
  leaveTopic(topicName: string, opts?: OperationOptions): Promise<void>
  publishTopicMessage(topicName: string, message: string | Uint8Array, options?: TopicMessageOptions): Promise<void>
  subscribeTopic(topicName: string, options?: TopicUsersOptions): Promise<SubscribeTopicResponse>
  unsubscribeTopic(topicName: string, options?: TopicUsersOptions): Promise<void>
  getSubscribedUserList(topicName: string): Promise<GetSubscribedUserListResponse>
  renewToken(token: string, opts?: OperationOptions): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

/** An rtm2 client: one user of one app. */
export declare class RTM extends EventEmitter<RTMEventMap> {
  constructor(appId: string, userId: string, config?: RTMConfig)
  readonly userId: string
  /** The state of the message connection. */
  readonly linkState: LinkState

  addEventListener<K extends RTMEventName>(eventName: K, listener: (...args: RTMEventMap[K]) => void): void
  removeEventListener<K extends RTMEventName>(eventName: K, listener: (...args: RTMEventMap[K]) => void): void
  /** Every message (or those of `channel`) until logout/close, `break` or `signal`. */
  messages(opts?: MessagesOptions): AsyncIterableIterator<MessageEvent>

  login(options?: LoginOptions): Promise<void>
  logout(): Promise<void>
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
  renewToken(token: string, options?: RenewTokenOptions): Promise<void>

  publish(channelName: string, message: string | Uint8Array, options?: PublishOptions): Promise<void>
  subscribe(channelName: string, options?: SubscribeOptions): Promise<RTMSubscription>
  unsubscribe(channelName: string, opts?: OperationOptions): Promise<void>
  subscribedChannels(): string[]

  createStreamChannel(channelName: string): RTMStreamChannel

  setParameters(parameters: Record<string, number | boolean> | string): void
  getParameters(): Record<string, number | boolean>
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
  messageQos: MessageQos[]
  messagePriority: MessagePriority[]
  topicEventType: TopicEventType[]
  serviceType: ServiceType[]
  linkState: LinkState[]
  linkOperation: LinkOperation[]
  linkStateChangeReason: LinkStateChangeReason[]
}

/** The RTM error-code table. */
export declare function errorCodes(): Array<{ code: number; name: ErrorCodeName; message: string }>
