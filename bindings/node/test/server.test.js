'use strict'
// Against a standalone `rtm2 serve` (development mode) over TCP on loopback: messaging, and
// timeouts / cancellation while the server is frozen (SIGSTOP), so no reply can arrive.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMTimeoutError, ErrorCode } = require('rtm2')
const native = require('rtm2/native')
const { APP_ID, uniq, track, closeAll, startServer, waitFor, within, rejectsWithCode } = require('./helpers')

let server

test.before(async () => {
  server = await startServer()
})

test.after(async () => {
  await closeAll()
  await server?.stop()
})

function client(prefix, config = {}) {
  return track(new RTM(APP_ID, uniq(prefix), { endpoint: server.endpoint, ...config }))
}

/** Runs `fn` while the server process is stopped, and resumes it afterwards. */
async function frozen(fn) {
  server.process.kill('SIGSTOP')
  // kill() only queues the signal: wait until the kernel reports the process stopped ('T').
  const stat = `/proc/${server.process.pid}/stat`
  const until = Date.now() + 5000
  while (require('node:fs').readFileSync(stat, 'utf8').split(') ')[1][0] !== 'T') {
    assert.ok(Date.now() < until, 'the server did not stop')
    await new Promise((r) => setTimeout(r, 5))
  }
  try {
    return await fn()
  } finally {
    server.process.kill('SIGCONT')
  }
}

test('pub/sub and peer-to-peer through rtm2 serve', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await alice.login()
  await bob.login()
  const channel = uniq('tcp')
  const sub = await bob.subscribe(channel)
  await alice.publish(channel, 'over tcp', { customType: 'demo' })
  await alice.publish(channel, new Uint8Array([1, 2, 3]))
  const got = []
  for await (const m of sub) {
    got.push(m)
    if (got.length === 2) break
  }
  assert.equal(got[0].message, 'over tcp')
  assert.equal(got[0].customType, 'demo')
  assert.equal(got[0].publisher, alice.userId)
  assert.equal(got[0].channelType, 'MESSAGE')
  assert.deepEqual([...got[1].message], [1, 2, 3])

  await rejectsWithCode(assert, alice.publish(uniq('nobody'), 'x', { channelType: 'USER' }), ErrorCode.CHANNEL_RECEIVER_OFFLINE)
  const dm = waitFor(bob, 'message', (m) => m.channelType === 'USER')
  await alice.publish(bob.userId, 'direct', { channelType: 'USER' })
  assert.equal((await dm).message, 'direct')
  await alice.logout()
  await bob.logout()
})

test('a bad endpoint cannot log in within the timeout (10011)', async () => {
  // A port nobody listens on (the server's port after it was stopped would race; use port 1).
  const c = track(new RTM(APP_ID, uniq('nowhere'), { endpoint: '127.0.0.1:1' }))
  const failed = waitFor(c, 'linkState', (s) => s.currentState === 'FAILED')
  await rejectsWithCode(assert, c.login({ timeoutMs: 300 }), ErrorCode.LOGIN_TIMEOUT, 'login')
  assert.equal((await failed).reasonCode, 'LOGIN_TIMEOUT')
  assert.equal(c.linkState, 'FAILED')
})

test('timeoutMs gives each operation its RTM timeout code (core with_timeout)', async () => {
  const a = client('slow', { requestTimeoutMs: 400 })
  await a.login()
  const sc = a.createStreamChannel(uniq('frozen'))
  await frozen(async () => {
    const e = await rejectsWithCode(assert, a.publish('c', 'x', { timeoutMs: 200 }), ErrorCode.CHANNEL_PUBLISH_MESSAGE_TIMEOUT, 'publish')
    assert.ok(e instanceof RTMTimeoutError)
    assert.match(e.reason, /200 ms/)
    await rejectsWithCode(assert, a.subscribe(uniq('c'), { timeoutMs: 200 }), ErrorCode.CHANNEL_SUBSCRIBE_TIMEOUT, 'subscribe')
    await rejectsWithCode(assert, a.renewToken('', { timeoutMs: 200 }), ErrorCode.RENEW_TOKEN_TIMEOUT, 'renew_token')
    const ej = await rejectsWithCode(assert, sc.join({ timeoutMs: 200 }), ErrorCode.CHANNEL_JOIN_FAILED, 'join')
    assert.ok(ej instanceof RTMTimeoutError, 'a join that ran out of time is an RTMTimeoutError')
    // Without timeoutMs the configured requestTimeoutMs (400 ms) applies.
    const e2 = await rejectsWithCode(assert, a.publish('c', 'x'), 11026)
    assert.match(e2.reason, /400 ms/)
  })
  // The session survives a short freeze.
  await within(a.publish('c', 'after the freeze'))
  await a.logout()
})

test('AbortSignal rejects with its reason and cancels the native operation', async () => {
  const a = client('abort')
  await a.login()
  const raw = new native.NativeClient(APP_ID, uniq('raw'), { endpoint: server.endpoint })
  await raw.login('')
  try {
    await frozen(async () => {
      const ac = new AbortController()
      const reason = new Error('user gave up')
      const started = Date.now()
      const p = a.publish('c', 'x', { signal: ac.signal })
      setTimeout(() => ac.abort(reason), 50)
      await assert.rejects(within(p), (e) => e === reason)
      assert.ok(Date.now() - started < 5000, 'the abort must not wait for the request timeout')

      const t = AbortSignal.timeout(100)
      await assert.rejects(within(a.subscribe(uniq('c'), { signal: t })), (e) => e.name === 'TimeoutError')

      // The native operation itself is cancelled (it does not wait for a reply or its timeout).
      const token = new native.CancelToken()
      const np = raw.publish('c', 'x', null, 60_000, token)
      setTimeout(() => token.cancel(), 50)
      await assert.rejects(within(np, 5000), (e) => /aborted/.test(e.message) && e.rtmCode === undefined)
    })
  } finally {
    await raw.logout()
    raw.close()
  }
  await a.logout()
})
