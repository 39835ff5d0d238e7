'use strict'
// Errors and operations of the public API: RTMError (with the RTM code), and `runOp`, which
// runs a native operation with `{ signal, timeoutMs }` (AbortSignal -> native cancellation).

const native = require('../index.js')

// ---------------------------------------------------------------------------------------------
// Errors

const CODE_TABLE = native.errorCodes()

/** RTM error codes by name, from the native table (e.g. `ErrorCode.CHANNEL_RECEIVER_OFFLINE`). */
const ErrorCode = Object.freeze(Object.fromEntries(CODE_TABLE.map((c) => [c.name, c.code])))
const NAME_OF = new Map(CODE_TABLE.map((c) => [c.code, c.name]))
const MESSAGE_OF = new Map(CODE_TABLE.map((c) => [c.code, c.message]))

/**
 * Every rtm2 operation fails with an RTMError (or a subclass) carrying the RTM code. It has
 * agora-rtm-sdk's ErrorInfo fields (`error`, `errorCode`, `reason`, `operation`) beside rtm2's.
 */
class RTMError extends Error {
  constructor(code, reason, operation, options) {
    const codeName = NAME_OF.get(code) ?? 'UNKNOWN'
    super(`${operation} failed: ${codeName} (${code}): ${reason}`, options)
    this.name = new.target.name
    /** The RTM error code, e.g. 11033 (identical in C, Python, Rust and Node). */
    this.code = code
    /** Same as `code` (agora-rtm-sdk's field name). */
    this.errorCode = code
    /** The code's name, e.g. `'CHANNEL_RECEIVER_OFFLINE'`. */
    this.codeName = codeName
    /** What went wrong, in words. */
    this.reason = reason
    /** The operation that failed, e.g. `'publish'`. */
    this.operation = operation
    /** Always `true` (agora-rtm-sdk's ErrorInfo field). */
    this.error = true
  }

  /** A short description of an RTM code (`undefined` if it is not in the table). */
  static describe(code) {
    return MESSAGE_OF.get(code)
  }
}

/**
 * An RTMError of an operation that ran out of time: its code is one of the `*_TIMEOUT` codes,
 * or the operation's failure code when it has no timeout code of its own (e.g. 11007 for join).
 */
class RTMTimeoutError extends RTMError {}

function makeError(code, reason, operation, timedOut = false) {
  const name = NAME_OF.get(code) ?? ''
  const Cls = timedOut || name.endsWith('_TIMEOUT') ? RTMTimeoutError : RTMError
  return new Cls(code, reason, operation)
}

/** Turns an error thrown or rejected by the binding into an RTMError; other errors pass. */
function fromNative(e) {
  if (e !== null && typeof e === 'object' && typeof e.rtmCode === 'number') {
    return makeError(e.rtmCode, e.rtmReason, e.rtmOperation, e.rtmTimedOut === true)
  }
  return e
}

function callSync(fn) {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

// ---------------------------------------------------------------------------------------------
// Operations: { signal, timeoutMs }

function timeoutArg(timeoutMs) {
  if (timeoutMs === undefined || timeoutMs === null) return null
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || timeoutMs > 0xffffffff) {
    throw new TypeError(`timeoutMs must be a number of milliseconds, got ${String(timeoutMs)}`)
  }
  return Math.ceil(timeoutMs)
}

/**
 * Runs a native operation. `start(timeoutMs, cancelToken)` returns the native Promise; its
 * value is passed through `map` when given (e.g. the server timestamp a native operation
 * resolves with, into agora-rtm-sdk's response object: no extra Promise per call).
 * `timeoutMs` goes to the core (the error then has the operation's RTM timeout code); an
 * AbortSignal rejects with `signal.reason` and cancels the native operation. With
 * `settleOnAbort`, see `settleAfterAbort`.
 */
async function runOp(opts, start, map, settleOnAbort = false) {
  const signal = opts?.signal
  const timeoutMs = timeoutArg(opts?.timeoutMs)
  if (signal == null) {
    let value
    try {
      value = await start(timeoutMs, null)
    } catch (e) {
      throw fromNative(e)
    }
    return map === undefined ? value : map(value)
  }
  signal.throwIfAborted()
  const token = new native.CancelToken()
  let p
  try {
    p = start(timeoutMs, token)
  } catch (e) {
    throw fromNative(e)
  }
  if (settleOnAbort) {
    const value = await settleAfterAbort(signal, token, p)
    return map === undefined ? value : map(value)
  }
  let onAbort
  const aborted = new Promise((_, reject) => {
    onAbort = () => {
      token.cancel()
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  p.catch(() => {}) // settles after an abort too (as cancelled); nobody awaits it then
  let value
  try {
    value = await Promise.race([p, aborted])
  } catch (e) {
    throw fromNative(e)
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  return map === undefined ? value : map(value)
}

// For operations whose abort has work to do on the server (a waiting lock acquisition is
// withdrawn): on abort the native side drops the operation, does that work and only then
// settles `p`; the call rejects with the signal's reason at that point, or keeps its outcome if
// it completed before the abort reached the native side (the lock was granted: it is held).
async function settleAfterAbort(signal, token, p) {
  let aborted = false
  const onAbort = () => {
    aborted = true
    token.cancel()
  }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await p
  } catch (e) {
    if (aborted && e?.code === 'Cancelled') throw signal.reason
    throw fromNative(e)
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

module.exports = { ErrorCode, RTMError, RTMTimeoutError, fromNative, callSync, runOp }
