'use strict'
// The public JavaScript API of rtm2, shaped after agora-rtm-sdk 2.x, over the napi binding
// (../index.js). This layer only adapts: it maps options and errors, turns AbortSignals into
// native cancellation, and hands event batches to EventEmitter listeners and iterators. All
// behaviour (validation, limits, state, timeouts) lives in rtm2-core.

const { EventEmitter } = require('node:events')
const native = require('../index.js')
const { ErrorCode, RTMError, RTMTimeoutError, fromNative, callSync, runOp } = require('./op.js')
const { RTMPresence, RTMStorage, RTMLock, RTMHistory } = require('./services.js')

const kOverflow = Symbol('rtm2.overflow')

// A client still logged in when the process exits (no logout()/close()) would stay online on
// the server until the presence timeout: log every one out, blocking for at most this long in
// all ('exit' handlers must be synchronous; the core's own runtime does the work).
const EXIT_LOGOUT_TIMEOUT_MS = 1000
process.on('exit', () => native.logoutAll(EXIT_LOGOUT_TIMEOUT_MS))

// ---------------------------------------------------------------------------------------------
// Event batches

// The layout of a native packed batch (src/events.rs, NativePackedBatch): 8 numbers per event
// in `rows`, and one entry per event in `timestamps` and `recovered`.
const STRIDE = 8
const KIND_BINARY = 0
const KIND_STRING = 1

/**
 * Calls `onMessage(message)` for every message of a packed batch and `onOther(nativeEvent)`
 * for every other event, in order. Message objects are built here: much cheaper than
 * building them through napi. A BINARY message is a Uint8Array view of the batch's buffer.
 */
function unpack(batch, onMessage, onOther) {
  const { rows, timestamps, recovered, strings, data, texts, others } = batch
  const n = timestamps.length
  let start = 0
  let t = 0
  let o = 0
  for (let i = 0, r = 0; i < n; i++, r += STRIDE) {
    const kind = rows[r]
    if (kind > KIND_STRING) {
      onOther(others[o++])
      continue
    }
    let message
    if (kind === KIND_BINARY) {
      const end = rows[r + 7]
      message = data.subarray(start, end)
      start = end
    } else {
      message = texts[t++]
    }
    onMessage({
      channelType: strings[rows[r + 1]],
      channelName: strings[rows[r + 2]],
      topicName: strings[rows[r + 3]],
      messageType: strings[rows[r + 4]],
      message,
      customType: strings[rows[r + 5]],
      publisher: strings[rows[r + 6]],
      timestamp: timestamps[i],
      recovered: recovered[i] === 1,
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Iteration

/** A bounded async queue for `rtm.messages()`; the producer is the event dispatcher. */
class MessageQueue {
  #items = []
  #waiters = []
  #done = false
  #error
  #limit
  #onEnd

  constructor(limit, onEnd) {
    this.#limit = limit
    this.#onEnd = onEnd
  }

  /** Queues a value; false if the queue is full (the value is dropped). */
  push(value) {
    if (this.#done) return true
    const w = this.#waiters.shift()
    if (w) {
      w.resolve({ value, done: false })
      return true
    }
    if (this.#items.length >= this.#limit) return false
    this.#items.push(value)
    return true
  }

  /** Ends the iteration: normally, or (with `error`) by rejecting the next read. */
  end(error) {
    if (this.#done) return
    this.#done = true
    this.#onEnd()
    if (error !== undefined) {
      this.#items.length = 0
      const first = this.#waiters.shift()
      if (first) first.reject(error)
      else this.#error = error
    }
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true })
  }

  next() {
    if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift(), done: false })
    if (this.#done) {
      const e = this.#error
      this.#error = undefined
      return e !== undefined ? Promise.reject(e) : Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  return() {
    this.#items.length = 0
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator]() {
    return this
  }
}

/** The messages of one subscribed channel, returned by `rtm.subscribe()`. Iterate it with
 * `for await`; it ends on unsubscribe, logout or close. Breaking out of the loop (or
 * `close()`) stops local delivery; the server subscription stays until `unsubscribe`. It is
 * also agora-rtm-sdk's SubscribeResponse: `{ channelName, timestamp }`. */
class RTMSubscription {
  #native
  #rtm

  constructor(nativeSub, rtm) {
    this.#native = nativeSub
    this.#rtm = rtm
    /** The channel. */
    this.channelName = nativeSub.channelName
    /** The server's time of the subscribe's answer, ms since the epoch. */
    this.timestamp = nativeSub.timestamp
  }

  /** The channel's messages; `signal` ends the iteration by rejecting with its reason. */
  async *messages(opts = {}) {
    const messages = []
    const onMessage = (m) => messages.push(m)
    const onOther = (ev) => {
      if (ev.kind === 'overflow') {
        this.#rtm[kOverflow]({ dropped: ev.dropped, source: 'subscription', channelName: this.channelName })
      }
    }
    try {
      for (;;) {
        const batch = await runOp({ signal: opts.signal }, (_t, tok) => this.#native.nextPackedBatch(null, tok))
        if (batch === null) return
        messages.length = 0
        unpack(batch, onMessage, onOther)
        for (let i = 0; i < messages.length; i++) yield messages[i]
      }
    } finally {
      this.#native.close()
    }
  }

  [Symbol.asyncIterator]() {
    return this.messages()
  }

  /** Stops local delivery of this subscription's messages (not the server subscription). */
  close() {
    this.#native.close()
  }

  /** Unsubscribes the channel (same as `rtm.unsubscribe(channelName)`). */
  unsubscribe(opts) {
    return this.#rtm.unsubscribe(this.channelName, opts)
  }
}

// ---------------------------------------------------------------------------------------------
// Stream channels

class RTMStreamChannel {
  #native

  constructor(nativeChannel) {
    this.#native = nativeChannel
  }

  /** The channel name. */
  get channelName() {
    return this.#native.channelName
  }

  /** Whether this client has joined the channel. */
  isJoined() {
    return this.#native.isJoined()
  }

  /** Topics this client joined as a publisher. */
  joinedTopics() {
    return this.#native.joinedTopics()
  }

  /** Joins with the channel's token; resolves with the topics present (also a topic SNAPSHOT event) and the server's `timestamp`. */
  join(options = {}) {
    const o = {
      token: options.token,
      withPresence: options.withPresence,
      withMetadata: options.withMetadata,
      withLock: options.withLock,
      beQuiet: options.beQuiet,
    }
    return runOp(options, (t, tok) => this.#native.join(o, t, tok))
  }

  /** Leaves the channel: every topic role and topic subscription ends. → `{ timestamp, channelName }` */
  leave(opts) {
    const channelName = this.channelName
    return runOp(
      opts,
      (t, tok) => this.#native.leave(t, tok),
      (timestamp) => ({ timestamp, channelName }),
    )
  }

  /** Becomes a publisher in `topic` (at most 8 per channel). → `{ timestamp, channelName, topicName }` */
  joinTopic(topic, options = {}) {
    const o = { qos: options.qos, priority: options.priority, meta: options.meta, syncWithMedia: options.syncWithMedia }
    return runOp(options, (t, tok) => this.#native.joinTopic(topic, o, t, tok), this.#topicResponse(topic))
  }

  /** Stops publishing in `topic`. → `{ timestamp, channelName, topicName }` */
  leaveTopic(topic, opts) {
    return runOp(opts, (t, tok) => this.#native.leaveTopic(topic, t, tok), this.#topicResponse(topic))
  }

  /** Publishes a string or bytes in a joined topic. → `{ timestamp, channelName, topicName }` */
  publishTopicMessage(topic, message, options = {}) {
    const o = { customType: options.customType, sendTs: options.sendTs }
    return runOp(
      options,
      (t, tok) => this.#native.publishTopicMessage(topic, message, o, t, tok),
      this.#topicResponse(topic),
    )
  }

  /**
   * Subscribes to publishers of `topic`: `users`, or (none given) every current publisher. →
   * `{ timestamp, channelName, topicName, succeedUsers, failedUsers, failedDetails }`
   */
  subscribeTopic(topic, options = {}) {
    const channelName = this.channelName
    return runOp(
      options,
      (t, tok) => this.#native.subscribeTopic(topic, options.users ?? null, t, tok),
      (r) => ({
        timestamp: r.timestamp,
        channelName,
        topicName: topic,
        succeedUsers: r.succeedUsers,
        failedUsers: r.failedUsers,
        failedDetails: r.failedDetails,
      }),
    )
  }

  /** Unsubscribes `users` of `topic`, or (none given) the whole topic. → `{ timestamp, channelName, topicName }` */
  unsubscribeTopic(topic, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.unsubscribeTopic(topic, options.users ?? null, t, tok),
      this.#topicResponse(topic),
    )
  }

  /**
   * The publishers this client subscribed to in `topic` (synchronous; none: empty lists). →
   * `{ channelName, topicName, subscribed, users, totalUser }` (`subscribed`: agora-rtm-sdk's
   * name; `users` the same list)
   */
  getSubscribedUserList(topic) {
    const users = callSync(() => this.#native.subscribedUsers(topic))
    return { channelName: this.channelName, topicName: topic, subscribed: users, users: [...users], totalUser: users.length }
  }

  /** Renews this channel's token. → `{ timestamp, channelName }` */
  renewToken(token, opts) {
    const channelName = this.channelName
    return runOp(
      opts,
      (t, tok) => this.#native.renewToken(token, t, tok),
      (timestamp) => ({ timestamp, channelName }),
    )
  }

  #topicResponse(topicName) {
    const channelName = this.channelName
    return (timestamp) => ({ timestamp, channelName, topicName })
  }

  /** Leaves the channel if joined (for `await using`). */
  async [Symbol.asyncDispose]() {
    if (this.isJoined()) await this.leave()
  }
}

// ---------------------------------------------------------------------------------------------
// The client

const PARAMETER_KEYS = {
  requestTimeoutMs: 'request_timeout_ms',
  presenceTimeout: 'presence_timeout_s',
  heartbeatInterval: 'heartbeat_interval_s',
  receiveOwnMessages: 'receive_own_messages',
  eventQueueCapacity: 'event_queue_capacity',
  pongTimeoutMs: 'pong_timeout_ms',
  reconnectInitialBackoffMs: 'reconnect_initial_backoff_ms',
  reconnectMaxBackoffMs: 'reconnect_max_backoff_ms',
}

const DEFAULT_ITERATOR_LIMIT = 65536

/** The end-to-end encryption settings of a config (agora-rtm-sdk's names), checked for type. */
function encryptionOptions(config) {
  const { encryptionMode, cipherKey, salt } = config
  if (encryptionMode != null && typeof encryptionMode !== 'string' && typeof encryptionMode !== 'number') {
    const got = typeof encryptionMode
    throw new TypeError(`encryptionMode must be 'NONE', 'AES_128_GCM', 'AES_256_GCM' or a number, got ${got}`)
  }
  if (cipherKey != null && typeof cipherKey !== 'string') {
    throw new TypeError(`cipherKey must be a string, got ${typeof cipherKey}`)
  }
  if (salt != null && typeof salt !== 'string' && !(salt instanceof Uint8Array)) {
    throw new TypeError(`salt must be a Uint8Array, a Buffer or a string, got ${typeof salt}`)
  }
  return { encryptionMode: encryptionMode ?? undefined, cipherKey: cipherKey ?? undefined, salt: salt ?? undefined }
}

/**
 * An rtm2 client: one user of one app. `new RTM(appId, userId, config)`, then
 * `await rtm.login()`. Services: `rtm.presence`, `rtm.storage`, `rtm.lock`, `rtm.history`. Events:
 * `message`, `presence`, `storage`, `lock`, `linkState`, `topic`, `tokenPrivilegeWillExpire`,
 * `token`, `overflow`, `error` (a listener threw).
 */
class RTM extends EventEmitter {
  #native
  #presence
  #storage
  #lock
  #history
  #token
  #pumping = false
  #iterators = new Set()
  #iteratorLimit

  constructor(appId, userId, config = {}) {
    super()
    const params = {}
    for (const [js, key] of Object.entries(PARAMETER_KEYS)) {
      if (config[js] !== undefined) params[key] = config[js]
    }
    Object.assign(params, config.parameters)
    const encryption = encryptionOptions(config)
    this.#native = callSync(
      () =>
        new native.NativeClient(appId, userId, {
          endpoint: config.endpoint,
          parameters: Object.keys(params).length > 0 ? JSON.stringify(params) : undefined,
          logLevel: config.logLevel,
          logFile: config.logFile,
          ...encryption,
        }),
    )
    this.#presence = new RTMPresence(this.#native.presence())
    this.#storage = new RTMStorage(this.#native.storage(), userId)
    this.#lock = new RTMLock(this.#native.lock())
    this.#history = new RTMHistory(this.#native.history())
    this.#token = config.token
    this.#iteratorLimit = config.iteratorQueueLimit ?? DEFAULT_ITERATOR_LIMIT
  }

  /** The user id. */
  get userId() {
    return this.#native.userId
  }

  /**
   * Where the client is connected, or was last: `{ endpoint, nodeId }` (e.g.
   * `{ endpoint: 'tcp://10.0.0.2:9696', nodeId: 'n1' }`; nodeId `''` outside a cluster; a client
   * given several endpoints fails over between them); null before the first connection.
   */
  get connectedTo() {
    return this.#native.connectedTo() ?? null
  }

  /**
   * Messages dropped because they did not decrypt with this client's encryption settings
   * (`encryptionMode`, `cipherKey`, `salt`): another key, salt or mode, a plain message to an
   * encrypting client or an encrypted one to a plain client, or tampered bytes. They are never
   * delivered; 0 when every message arrived.
   */
  get undecryptableMessages() {
    return this.#native.undecryptableMessages()
  }

  /** The state of the message connection, e.g. `'CONNECTED'`. */
  get linkState() {
    return this.#native.linkState()
  }

  /** The presence service: whoNow/getOnlineUsers, whereNow/getUserChannels, set/get/removeState. */
  get presence() {
    return this.#presence
  }

  /** The storage service: channel and user metadata. */
  get storage() {
    return this.#storage
  }

  /** The lock service. */
  get lock() {
    return this.#lock
  }

  /** The history service: getMessages (messages published with `storeInHistory`). */
  get history() {
    return this.#history
  }

  // --- events -------------------------------------------------------------------------------

  /** agora-rtm-sdk style: same as `on(eventName, listener)`. */
  addEventListener(eventName, listener) {
    this.on(eventName, listener)
  }

  /** agora-rtm-sdk style: same as `off(eventName, listener)`. */
  removeEventListener(eventName, listener) {
    this.off(eventName, listener)
  }

  /**
   * Every message (all channels, users and topics), or those of `channel`, as an async
   * iterator. It ends on logout/close, when the client fails (FAILED: e.g. the same user id
   * logged in elsewhere, or the token expired), or on `break`; `signal` ends it by rejecting with the
   * signal's reason. At most `config.iteratorQueueLimit` messages wait; more are dropped and
   * reported by an `overflow` event.
   */
  messages(opts = {}) {
    const { channel, signal } = opts
    signal?.throwIfAborted()
    let onAbort
    const q = new MessageQueue(this.#iteratorLimit, () => {
      this.#iterators.delete(entry)
      signal?.removeEventListener('abort', onAbort)
    })
    const entry = { q, channel }
    this.#iterators.add(entry)
    if (signal) {
      onAbort = () => q.end(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
    }
    return q
  }

  [kOverflow](ev) {
    this.#emit('overflow', ev)
  }

  #emit(name, payload) {
    try {
      this.emit(name, payload)
    } catch (err) {
      if (this.listenerCount('error') > 0) {
        try {
          this.emit('error', err)
        } catch (err2) {
          process.nextTick(() => {
            throw err2
          })
        }
      } else {
        process.nextTick(() => {
          throw err
        })
      }
    }
  }

  // Per batch: messages the iterators dropped, and whether the client failed.
  #batchDropped = 0
  #batchFailed = false
  // Logins started and not finished: a FAILED state delivered meanwhile belongs to an earlier
  // attempt (the native login changes the state on the SDK's thread, later than the call).
  #loginsInFlight = 0

  #onMessage = (m) => {
    if (this.#iterators.size > 0) {
      for (const it of this.#iterators) {
        if ((it.channel === undefined || it.channel === m.channelName) && !it.q.push(m)) this.#batchDropped++
      }
    }
    this.#emit('message', m)
  }

  #onOther = (ev) => {
    switch (ev.kind) {
      case 'message':
        this.#onMessage(ev.message)
        break
      case 'linkState':
        if (ev.linkState.serviceType === 'MESSAGE' && ev.linkState.currentState === 'FAILED') this.#batchFailed = true
        this.#emit('linkState', ev.linkState)
        break
      case 'topic':
        this.#emit('topic', ev.topic)
        break
      case 'presence': {
        const p = ev.presence
        if (p.interval === undefined) p.interval = null
        this.#emit('presence', p)
        break
      }
      case 'storage':
        this.#emit('storage', ev.storage)
        break
      case 'lock':
        this.#emit('lock', ev.lock)
        break
      case 'tokenPrivilegeWillExpire':
        this.#emit('tokenPrivilegeWillExpire', ev.channelName)
        this.#emit('token', this.#tokenEvent(ev.channelName))
        break
      case 'overflow':
        this.#emit('overflow', { dropped: ev.dropped, source: 'client' })
        break
    }
  }

  // agora-rtm-sdk's TokenEvent of a will-expire notice: the login token (channelName '') covers
  // the subscribed message channels, a stream channel's token that channel. The server's notice
  // carries no time: `timestamp` is this machine's, when the notice reached JavaScript.
  #tokenEvent(channelName) {
    const login = channelName === ''
    return {
      eventType: 'WILL_EXPIRE',
      reason: login
        ? 'the login token will expire soon: renew it with renewToken(token)'
        : `the token of stream channel ${channelName} will expire soon: renew it with renewToken(token, { channelName })`,
      affectedResources: {
        messageChannels: login ? this.#native.subscribedChannels() : [],
        streamChannels: login ? [] : [channelName],
      },
      timestamp: Date.now(),
    }
  }

  #dispatch(batch) {
    this.#batchDropped = 0
    this.#batchFailed = false
    unpack(batch, this.#onMessage, this.#onOther)
    const dropped = this.#batchDropped
    if (dropped > 0) this.#emit('overflow', { dropped, source: 'iterator' })
    // A failed client (e.g. taken over by the same user id) no longer keeps the process alive,
    // and its message iterators end (as its subscriptions' do): nothing more will arrive.
    if (this.#batchFailed && this.#loginsInFlight === 0 && this.#native.linkState() === 'FAILED') {
      this.#stopPump()
      this.#endIterators()
    }
  }

  // The pump delivers event batches while logged in and keeps the event loop alive meanwhile.
  #startPump() {
    if (this.#pumping) return
    this.#pumping = true
    this.#native.startPackedEvents((batch) => {
      this.#dispatch(batch)
    })
  }

  #stopPump() {
    if (!this.#pumping) return
    this.#pumping = false
    this.#native.stopEvents()
  }

  #endIterators() {
    for (const it of [...this.#iterators]) it.q.end()
  }

  // --- lifecycle ------------------------------------------------------------------------------

  /** Logs in with `token` (or the config's token; none in development mode). → `{ timestamp }` */
  async login(options = {}) {
    const token = options.token ?? this.#token ?? ''
    this.#startPump()
    this.#loginsInFlight++
    try {
      return await runOp(
        options,
        (t, tok) => this.#native.login(token, t, tok),
        (timestamp) => ({ timestamp }),
      )
    } catch (e) {
      const state = this.#native.linkState()
      if (this.#loginsInFlight === 1 && (state === 'FAILED' || state === 'IDLE')) this.#stopPump()
      throw e
    } finally {
      this.#loginsInFlight--
    }
  }

  /**
   * Logs out: every subscription and stream channel ends. Never fails. → `{ timestamp }` (the
   * server's; this machine's when there was no server to ask: not connected, or closed)
   */
  async logout() {
    const timestamp = await this.#native.logout().catch((e) => {
      throw fromNative(e)
    })
    this.#endIterators()
    if (this.#native.linkState() === 'IDLE') this.#stopPump()
    return { timestamp }
  }

  /** Logs out if needed and releases the client; later calls fail with 10018. Idempotent. */
  async close() {
    if (this.#native.linkState() !== 'IDLE') await this.logout()
    this.#endIterators()
    this.#native.close()
    this.#pumping = false
  }

  async [Symbol.asyncDispose]() {
    await this.close()
  }

  /**
   * Renews the login token, or with `{ channelName }` a stream channel's token. → `{ timestamp }`
   * (and `channelName` for a stream channel's token)
   */
  renewToken(token, options = {}) {
    if (options.channelName !== undefined) return this.createStreamChannel(options.channelName).renewToken(token, options)
    return runOp(
      options,
      (t, tok) => this.#native.renewToken(token, t, tok),
      (timestamp) => ({ timestamp }),
    )
  }

  // --- message channels -----------------------------------------------------------------------

  /**
   * Publishes a string or bytes to a channel, or with `channelType: 'USER'` to a user. →
   * `{ timestamp, channelName }` (the server's time of the acknowledgement that covered it)
   */
  publish(channelName, message, options = {}) {
    const o = { channelType: options.channelType, customType: options.customType, storeInHistory: options.storeInHistory }
    return runOp(
      options,
      (t, tok) => this.#native.publish(channelName, message, o, t, tok),
      (timestamp) => ({ timestamp, channelName }),
    )
  }

  /** Subscribes to a message channel; resolves with an RTMSubscription (iterable; also `{ channelName, timestamp }`). */
  async subscribe(channelName, options = {}) {
    const o = {
      withMessage: options.withMessage,
      withPresence: options.withPresence,
      withMetadata: options.withMetadata,
      withLock: options.withLock,
      beQuiet: options.beQuiet,
    }
    const sub = await runOp(options, (t, tok) => this.#native.subscribe(channelName, o, t, tok))
    return new RTMSubscription(sub, this)
  }

  /** Unsubscribes from a message channel. → `{ timestamp, channelName }` */
  unsubscribe(channelName, opts) {
    return runOp(
      opts,
      (t, tok) => this.#native.unsubscribe(channelName, t, tok),
      (timestamp) => ({ timestamp, channelName }),
    )
  }

  /** Channels this client is subscribed to. */
  subscribedChannels() {
    return this.#native.subscribedChannels()
  }

  // --- stream channels ------------------------------------------------------------------------

  /** The stream channel `channelName` (throws 10008 for an invalid name). */
  createStreamChannel(channelName) {
    return new RTMStreamChannel(callSync(() => this.#native.streamChannel(channelName)))
  }

  // --- parameters -----------------------------------------------------------------------------

  /** Applies tuning parameters (object or JSON string); an unknown key throws 10014. */
  setParameters(parameters) {
    const json = typeof parameters === 'string' ? parameters : JSON.stringify(parameters)
    callSync(() => this.#native.setParameters(json))
  }

  /** The tuning parameters. */
  getParameters() {
    return JSON.parse(callSync(() => this.#native.getParameters()))
  }
}

// ---------------------------------------------------------------------------------------------
// Module functions

/** An RTM login token (AccessToken2) for `userId`, valid `expireSecs` from now. */
function buildToken(appId, appCertificate, userId, expireSecs) {
  return callSync(() => native.buildToken(appId, appCertificate, userId, expireSecs))
}

/** A stream-channel token for `channelName` and `userId`, valid `expireSecs` from now. */
function buildStreamToken(appId, appCertificate, channelName, userId, expireSecs) {
  return callSync(() => native.buildStreamToken(appId, appCertificate, channelName, userId, expireSecs))
}

/**
 * Routes the SDK's log records at `level` and above to `handler(level, target, message)`, or
 * stops with `null`. Process-wide; does not keep the process alive.
 */
function setLogHandler(level, handler) {
  callSync(() => native.setLogHandler(level, handler))
}

const VERSION = native.version()

/** An enumeration's names as constants (`LockEventType.ACQUIRED === 'ACQUIRED'`), from the native tables. */
function constants(names) {
  return Object.freeze(Object.fromEntries(names.map((n) => [n, n])))
}
const ENUMS = native.enumNames()
const ChannelType = constants(ENUMS.channelType)
const MessageType = constants(ENUMS.messageType)
const EncryptionMode = constants(ENUMS.encryptionMode)
const MessageQos = constants(ENUMS.messageQos)
const MessagePriority = constants(ENUMS.messagePriority)
const TopicEventType = constants(ENUMS.topicEventType)
const PresenceEventType = constants(ENUMS.presenceEventType)
const StorageType = constants(ENUMS.storageType)
const StorageEventType = constants(ENUMS.storageEventType)
const LockEventType = constants(ENUMS.lockEventType)
const ServiceType = constants(ENUMS.serviceType)
const LinkState = constants(ENUMS.linkState)
const LinkOperation = constants(ENUMS.linkOperation)
const LinkStateChangeReason = constants(ENUMS.linkStateChangeReason)

module.exports = {
  RTM,
  RTMError,
  RTMBaseError: RTMError,
  RTMTimeoutError,
  RTMStreamChannel,
  RTMSubscription,
  RTMPresence,
  RTMStorage,
  RTMLock,
  RTMHistory,
  ErrorCode,
  ChannelType,
  MessageType,
  EncryptionMode,
  MessageQos,
  MessagePriority,
  TopicEventType,
  PresenceEventType,
  StorageType,
  StorageEventType,
  LockEventType,
  ServiceType,
  LinkState,
  LinkOperation,
  LinkStateChangeReason,
  buildToken,
  buildStreamToken,
  setLogHandler,
  VERSION,
  enumNames: native.enumNames,
  errorCodes: native.errorCodes,
}
