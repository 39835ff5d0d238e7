'use strict'
// Shared helpers of the node:test suite: real servers (`rtm2 serve` on loopback, or the
// embedded default), unique names, and bounded waits for events.

const { spawn } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')

const APP_ID = '970CA35de60c44645bbae8a215061b33'
const CERT = '5CFd2fd1755d40ecb72977518be15d3b'
/** Upper bound of every wait in the suite. */
const WAIT_MS = 10_000

const REPO = path.resolve(__dirname, '..', '..', '..')
const RTM2_BIN = process.env.RTM2_BIN || path.join(REPO, 'target', 'debug', 'rtm2')

let counter = 0
/** A name unique in this process (the embedded server is shared by every client of it). */
function uniq(prefix) {
  counter += 1
  return `${prefix}${process.pid}x${counter}`
}

const open = new Set()

/** Remembers a client so that `closeAll()` (run after each test) releases it. */
function track(rtm) {
  open.add(rtm)
  return rtm
}

/** Closes every tracked client (bounded). */
async function closeAll() {
  const all = [...open]
  open.clear()
  await within(Promise.allSettled(all.map((c) => c.close())), WAIT_MS, 'clients to close')
}

/** Rejects after `ms` with an error naming `what`; `clear()` cancels the timer. */
function deadline(ms, what) {
  let timer
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return { promise, clear: () => clearTimeout(timer) }
}

/** Resolves with the first `event` payload of `emitter` matching `pred`, within `ms`. */
function waitFor(emitter, event, pred = () => true, ms = WAIT_MS, what = event) {
  const d = deadline(ms, what)
  let listener
  const got = new Promise((resolve) => {
    listener = (payload) => {
      if (pred(payload)) resolve(payload)
    }
    emitter.on(event, listener)
  })
  return Promise.race([got, d.promise]).finally(() => {
    d.clear()
    emitter.off(event, listener)
  })
}

/** Collects `n` payloads of `event` matching `pred`, within `ms`. */
function collect(emitter, event, n, pred = () => true, ms = WAIT_MS) {
  const d = deadline(ms, `${n} ${event} events`)
  const items = []
  let listener
  const got = new Promise((resolve) => {
    listener = (payload) => {
      if (pred(payload)) items.push(payload)
      if (items.length >= n) resolve(items)
    }
    emitter.on(event, listener)
  })
  return Promise.race([got, d.promise]).finally(() => {
    d.clear()
    emitter.off(event, listener)
  })
}

/** Awaits `promise` within `ms`. */
async function within(promise, ms = WAIT_MS, what = 'an operation') {
  const d = deadline(ms, what)
  try {
    return await Promise.race([promise, d.promise])
  } finally {
    d.clear()
  }
}

/**
 * Starts `rtm2 serve --listen 127.0.0.1:0 --no-rate-limits [args]` and resolves with
 * `{ endpoint, process, stop() }` once it printed its address. (Rate limits are off because
 * several tests burst on purpose, e.g. 51 subscribes; the limits have their own tests.)
 * `listen` picks another address (e.g. the port of a server that was stopped); `rateLimits:
 * true` keeps the server's reference rate limits. Rejects if the server exits first (e.g. the
 * address is in use).
 */
async function startServer(args = [], { listen = '127.0.0.1:0', rateLimits = false } = {}) {
  if (!fs.existsSync(RTM2_BIN)) {
    throw new Error(`rtm2 binary not found at ${RTM2_BIN}: build it (cargo build -p rtm2-cli) or set RTM2_BIN`)
  }
  const flags = ['serve', '--listen', listen, ...(rateLimits ? [] : ['--no-rate-limits']), ...args]
  const child = spawn(RTM2_BIN, flags, {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  const d = deadline(WAIT_MS, 'rtm2 serve to print its address')
  const addr = new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      stderr += chunk
      const m = /rtm2 server listening on (\S+)\s/.exec(stderr)
      if (m) resolve(m[1])
    })
    child.on('exit', (code) => reject(new Error(`rtm2 serve exited (${code}): ${stderr}`)))
    child.on('error', reject)
  })
  let address
  try {
    address = await Promise.race([addr, d.promise])
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  } finally {
    d.clear()
  }
  child.stderr.resume()
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    endpoint: `tcp://${address}`,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT')
        child.kill('SIGKILL')
      }
      await within(exited, WAIT_MS, 'rtm2 serve to exit')
    },
  }
}

/**
 * A user in another process ("ghost"): `rtm2 subscribe` of `channel` on `endpoint` with a 5 s
 * presence timeout, optionally acquiring `lock` of that message channel (waiting for it).
 * Resolves with `{ process, kill() }` once it printed `subscribed to CHANNEL` (and `acquired
 * lock LOCK`) on stderr. `kill()` sends SIGKILL (no logout) and waits for the exit.
 */
async function startGhost(endpoint, userId, channel, { lock, token = '' } = {}) {
  if (!fs.existsSync(RTM2_BIN)) {
    throw new Error(`rtm2 binary not found at ${RTM2_BIN}: build it (cargo build -p rtm2-cli) or set RTM2_BIN`)
  }
  const args = ['subscribe', '--endpoint', endpoint, '--app-id', APP_ID, '--user-id', userId, '--token', token]
  args.push('--presence-timeout', '5')
  if (lock !== undefined) args.push('--acquire-lock', `${channel}:${lock}`)
  args.push(channel)
  const child = spawn(RTM2_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const wanted = [`subscribed to ${channel}`, ...(lock !== undefined ? [`acquired lock ${lock}`] : [])]
  let stderr = ''
  const ready = new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      stderr += chunk
      if (wanted.every((l) => stderr.split('\n').includes(l))) resolve()
    })
    child.once('exit', (code, signal) => reject(new Error(`ghost ${userId} exited (${code ?? signal}): ${stderr}`)))
    child.once('error', reject)
  })
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await within(exited, WAIT_MS, `ghost ${userId} to exit`)
  }
  try {
    await within(ready, WAIT_MS, `ghost ${userId}: ${wanted.join(', ')}`)
  } catch (e) {
    await kill()
    throw e
  }
  return { process: child, kill }
}

/**
 * Runs `fn` while `server`'s process is stopped (SIGSTOP: no reply can arrive), and resumes
 * it afterwards.
 */
async function frozen(server, fn) {
  server.process.kill('SIGSTOP')
  // kill() only queues the signal: wait until the kernel reports the process stopped ('T').
  const stat = `/proc/${server.process.pid}/stat`
  const until = Date.now() + WAIT_MS
  while (fs.readFileSync(stat, 'utf8').split(') ')[1][0] !== 'T') {
    if (Date.now() >= until) throw new Error('the server did not stop')
    await new Promise((r) => setTimeout(r, 5))
  }
  try {
    return await fn()
  } finally {
    server.process.kill('SIGCONT')
  }
}

/** Starts the certificate server of the common scenarios (token notice 2 s). */
function startCertServer() {
  return startServer(['--app-id', APP_ID, '--app-certificate', CERT, '--token-notice-secs', '2'])
}

/** Asserts that `promise` rejects with an RTMError of `code` (and returns the error). */
async function rejectsWithCode(assert, promise, code, operation) {
  const { RTMError } = require('rtm2')
  let error
  await assert.rejects(within(promise), (e) => {
    error = e
    return true
  })
  assert.ok(error instanceof RTMError, `expected an RTMError, got ${error && error.stack}`)
  assert.equal(error.code, code, `expected code ${code}, got ${error.code} (${error.message})`)
  if (operation !== undefined) assert.equal(error.operation, operation)
  return error
}

/** Asserts that `fn()` throws an RTMError of `code` synchronously. */
function throwsWithCode(assert, fn, code) {
  const { RTMError } = require('rtm2')
  let error
  assert.throws(fn, (e) => {
    error = e
    return true
  })
  assert.ok(error instanceof RTMError, `expected an RTMError, got ${error && error.stack}`)
  assert.equal(error.code, code, `expected code ${code}, got ${error.code} (${error.message})`)
  return error
}

module.exports = {
  APP_ID,
  CERT,
  WAIT_MS,
  REPO,
  RTM2_BIN,
  uniq,
  track,
  closeAll,
  waitFor,
  collect,
  within,
  startServer,
  startCertServer,
  startGhost,
  frozen,
  rejectsWithCode,
  throwsWithCode,
}
