'use strict'
// The presence, storage, lock and history services of an RTM client (`rtm.presence`,
// `rtm.storage`, `rtm.lock`, `rtm.history`), shaped after agora-rtm-sdk 2.x. Like the rest of lib/, this layer only maps
// arguments and results; validation, limits, revisions and the lock queue live in rtm2-core
// and the server. Every method takes the operation options `{ signal, timeoutMs }`.

const { runOp } = require('./op.js')

/** The channel type reported in results (the native default is MESSAGE). */
function typeOf(channelType) {
  return channelType ?? 'MESSAGE'
}

/**
 * A user state as `{ key, value }` pairs: a plain object (`{ mood: 'happy' }`), a Map, or an
 * array of `{ key, value }` items or `[key, value]` tuples (arrays may repeat a key, which the
 * SDK rejects with 13010).
 */
function stateItems(state) {
  if (state === null || state === undefined) return []
  if (Array.isArray(state)) {
    return state.map((e) => (Array.isArray(e) ? { key: e[0], value: e[1] } : { key: e?.key, value: e?.value }))
  }
  const entries = state instanceof Map ? [...state] : Object.entries(state)
  return entries.map(([key, value]) => ({ key, value }))
}

/** The native options of a metadata write (agora-rtm-sdk names). */
function metadataOptions(options) {
  return {
    majorRevision: options.majorRevision,
    lockName: options.lockName,
    addTimeStamp: options.addTimeStamp,
    addUserId: options.addUserId,
    fencingToken: options.fencingToken,
  }
}

// ---------------------------------------------------------------------------------------------
// Presence

/** Who is in a channel, where a user is, and per-channel user state (`rtm.presence`). */
class RTMPresence {
  #native

  constructor(nativePresence) {
    this.#native = nativePresence
  }

  /**
   * Who is present in a channel, one page at a time (no need to be in it). Options:
   * `includedUserId` (default true), `includedState` (default false; needs includedUserId,
   * else 13003), `page` (the `nextPage` of an earlier answer). → `{ channelName, channelType,
   * totalOccupancy, occupants, nextPage, timestamp }`
   */
  async getOnlineUsers(channelName, channelType, options = {}) {
    const o = { includedUserId: options.includedUserId, includedState: options.includedState, page: options.page }
    const r = await runOp(options, (t, tok) => this.#native.getOnlineUsers(channelName, channelType, o, t, tok))
    return {
      channelName,
      channelType: typeOf(channelType),
      totalOccupancy: r.totalOccupancy,
      occupants: r.occupants,
      nextPage: r.nextPage,
      timestamp: r.timestamp,
    }
  }

  /** Alias of `getOnlineUsers`. */
  whoNow(channelName, channelType, options) {
    return this.getOnlineUsers(channelName, channelType, options)
  }

  /** The channels a user is present in (`''`: this client). → `{ channels, totalChannel, timestamp }` */
  getUserChannels(userId, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.getUserChannels(userId ?? '', t, tok),
      ({ channels, timestamp }) => ({ channels, totalChannel: channels.length, timestamp }),
    )
  }

  /** Alias of `getUserChannels`. */
  whereNow(userId, options) {
    return this.getUserChannels(userId, options)
  }

  /**
   * Sets (adds or overwrites) keys of this client's state in a channel; before this client
   * subscribes to / joins it, the state is kept and applied then (10002 before login). →
   * `{ channelName, channelType, timestamp }` (the server's time; this machine's when the state
   * was only kept)
   */
  setState(channelName, channelType, state, options = {}) {
    const items = stateItems(state)
    return runOp(
      options,
      (t, tok) => this.#native.setState(channelName, channelType, items, t, tok),
      (timestamp) => ({ channelName, channelType: typeOf(channelType), timestamp }),
    )
  }

  /**
   * A user's state in a channel (13011 if the user is not present there). → `{ channelName,
   * channelType, userId, states, statesCount, timestamp }`
   */
  async getState(userId, channelName, channelType, options = {}) {
    const u = await runOp(options, (t, tok) => this.#native.getState(channelName, channelType, userId, t, tok))
    return { channelName, channelType: typeOf(channelType), ...u }
  }

  /**
   * Removes keys (`options.states`) of this client's state in a channel; none: all of them. →
   * `{ channelName, channelType, timestamp }`
   */
  removeState(channelName, channelType, options = {}) {
    const keys = options.states ?? null
    return runOp(
      options,
      (t, tok) => this.#native.removeState(channelName, channelType, keys, t, tok),
      (timestamp) => ({ channelName, channelType: typeOf(channelType), timestamp }),
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Storage

/** Channel and user metadata with revisions (`rtm.storage`). */
class RTMStorage {
  #native
  #userId

  constructor(nativeStorage, userId) {
    this.#native = nativeStorage
    this.#userId = userId
  }

  #channelWrite(method, channelName, channelType, data, options) {
    const o = metadataOptions(options)
    return runOp(options, async (t, tok) => {
      const w = await this.#native[method](channelName, channelType, data, o, t, tok)
      return {
        channelName,
        channelType: typeOf(channelType),
        totalCount: w.totalCount,
        majorRevision: w.majorRevision,
        timestamp: w.timestamp,
      }
    })
  }

  #userWrite(method, data, options) {
    const o = metadataOptions(options)
    const userId = options.userId || this.#userId
    return runOp(options, async (t, tok) => {
      const w = await this.#native[method](options.userId ?? null, data, o, t, tok)
      return { userId, totalCount: w.totalCount, majorRevision: w.majorRevision, timestamp: w.timestamp }
    })
  }

  /** Adds or overwrites items (`[{ key, value, revision? }]`) of a channel's metadata. */
  setChannelMetadata(channelName, channelType, data, options = {}) {
    return this.#channelWrite('setChannelMetadata', channelName, channelType, data, options)
  }

  /** Changes existing items of a channel's metadata (12014 if one does not exist). */
  updateChannelMetadata(channelName, channelType, data, options = {}) {
    return this.#channelWrite('updateChannelMetadata', channelName, channelType, data, options)
  }

  /** Removes the items `options.data` (by key) of a channel's metadata; none: the whole set. */
  removeChannelMetadata(channelName, channelType, options = {}) {
    return this.#channelWrite('removeChannelMetadata', channelName, channelType, options.data ?? null, options)
  }

  /**
   * A channel's metadata: `{ channelName, channelType, majorRevision, totalCount, metadata: { key:
   * { value, revision, updated, authorUid } }, timestamp }`.
   */
  async getChannelMetadata(channelName, channelType, options = {}) {
    const d = await runOp(options, (t, tok) => this.#native.getChannelMetadata(channelName, channelType, t, tok))
    return { channelName, channelType: typeOf(channelType), ...d }
  }

  /** Adds or overwrites items of a user's metadata (`options.userId`, default this client). */
  setUserMetadata(data, options = {}) {
    return this.#userWrite('setUserMetadata', data, options)
  }

  /** Changes existing items of a user's metadata (12014 if one does not exist). */
  updateUserMetadata(data, options = {}) {
    return this.#userWrite('updateUserMetadata', data, options)
  }

  /** Removes the items `options.data` of a user's metadata; none: the whole set. */
  removeUserMetadata(options = {}) {
    return this.#userWrite('removeUserMetadata', options.data ?? null, options)
  }

  /** A user's metadata (`options.userId`, default this client): `{ userId, …, timestamp }`. */
  async getUserMetadata(options = {}) {
    const userId = options.userId || this.#userId
    const d = await runOp(options, (t, tok) => this.#native.getUserMetadata(options.userId ?? null, t, tok))
    return { userId, ...d }
  }

  /** Receives a user's metadata: a storage SNAPSHOT event now, then an UPDATE per change. → `{ userId, timestamp }` */
  subscribeUserMetadata(userId, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.subscribeUserMetadata(userId, t, tok),
      (timestamp) => ({ userId, timestamp }),
    )
  }

  /** Stops receiving a user's metadata (12015 if not subscribed). → `{ userId, timestamp }` */
  unsubscribeUserMetadata(userId, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.unsubscribeUserMetadata(userId, t, tok),
      (timestamp) => ({ userId, timestamp }),
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Locks

/** Locks scoped to a channel (`rtm.lock`). */
class RTMLock {
  #native

  constructor(nativeLock) {
    this.#native = nativeLock
  }

  // setLock, removeLock, releaseLock, revokeLock: → `{ channelName, channelType, lockName, timestamp }`.
  #call(options, channelName, channelType, lockName, start) {
    return runOp(options, start, (timestamp) => ({ channelName, channelType: typeOf(channelType), lockName, timestamp }))
  }

  /** Defines a lock; `options.ttl` in s (default 10, clamped to 10..300). 14004 if it exists. */
  setLock(channelName, channelType, lockName, options = {}) {
    return this.#call(options, channelName, channelType, lockName, (t, tok) =>
      this.#native.setLock(channelName, channelType, lockName, options.ttl, t, tok),
    )
  }

  /**
   * Every lock of a channel: `{ channelName, channelType, totalLocks, lockDetails: [{ lockName,
   * owner, ttl, fencingToken }], timestamp }`.
   */
  getLock(channelName, channelType, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.getLocks(channelName, channelType, t, tok),
      ({ lockDetails, timestamp }) => ({
        channelName,
        channelType: typeOf(channelType),
        totalLocks: lockDetails.length,
        lockDetails,
        timestamp,
      }),
    )
  }

  /** The same as `getLock` (agora-rtm-sdk's name), by the name the other bindings use (`get_locks`). */
  getLocks(channelName, channelType, options = {}) {
    return this.getLock(channelName, channelType, options)
  }

  /** Removes a lock (14008 if it does not exist); waiting acquisitions fail with 14008. */
  removeLock(channelName, channelType, lockName, options = {}) {
    return this.#call(options, channelName, channelType, lockName, (t, tok) =>
      this.#native.removeLock(channelName, channelType, lockName, t, tok),
    )
  }

  /**
   * Takes a lock. Held by another user: fails with 14007, or with `options.retry` waits in the
   * server's queue until granted (no time limit unless `timeoutMs`). `signal` abandons the
   * wait: the promise rejects with its reason once the server has withdrawn the acquisition, so
   * that from then on the lock cannot be granted to it — or resolves if the lock was granted
   * before the abort reached the SDK (you hold it). A `timeoutMs` expiry is likewise reported
   * after the withdrawal. Resolves with `fencingToken`, the grant's fencing token: strictly
   * increasing from grant to grant; send it with writes to what the lock guards and reject
   * tokens lower than the highest seen (metadata writes take it as `options.fencingToken`).
   * → `{ channelName, channelType, lockName, fencingToken, timestamp }` (the server's time of
   * the grant)
   */
  acquireLock(channelName, channelType, lockName, options = {}) {
    return runOp(
      options,
      (t, tok) => this.#native.acquireLock(channelName, channelType, lockName, options.retry, t, tok),
      ({ fencingToken, timestamp }) => ({ channelName, channelType: typeOf(channelType), lockName, fencingToken, timestamp }),
      true,
    )
  }

  /** Releases a lock this client holds (14006 otherwise); the next waiter gets it. */
  releaseLock(channelName, channelType, lockName, options = {}) {
    return this.#call(options, channelName, channelType, lockName, (t, tok) =>
      this.#native.releaseLock(channelName, channelType, lockName, t, tok),
    )
  }

  /** Frees a lock held by `owner` (14006 if `owner` does not hold it). Anyone may revoke. */
  revokeLock(channelName, channelType, lockName, owner, options = {}) {
    return this.#call(options, channelName, channelType, lockName, (t, tok) =>
      this.#native.revokeLock(channelName, channelType, lockName, owner, t, tok),
    )
  }
}

// ---------------------------------------------------------------------------------------------
// History

/**
 * Stored messages (`rtm.history`): those published with `storeInHistory: true` to a message
 * channel, or to a user (kept in the receiver's user channel).
 */
class RTMHistory {
  #native

  constructor(nativeHistory) {
    this.#native = nativeHistory
  }

  /**
   * A page of the stored messages of a message channel, or with `'USER'` of this client's own
   * user channel (`channelName` = its user id; another user's: 15004), newest first. Options:
   * `messageCount` (1..100; 0 or none: 100), `start` (only messages before this server
   * timestamp, ms, exclusive; 0: from the newest: pass a page's `newStart` for the next, older,
   * page), `end` (only messages at or after it, inclusive; 0: no bound); with both, start must
   * be after end and at most 24 h apart (15002). → `{ messageList, count, newStart, timestamp }`
   */
  async getMessages(channelName, channelType, options = {}) {
    const o = { messageCount: options.messageCount, start: options.start, end: options.end }
    return runOp(options, (t, tok) => this.#native.getMessages(channelName, channelType, o, t, tok))
  }
}

module.exports = { RTMPresence, RTMStorage, RTMLock, RTMHistory }
