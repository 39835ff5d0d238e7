'use strict'
// Requests that time out while `rtm2 serve` is stalled (SIGSTOP) and that it carries out once it
// runs again leave the client agreeing with the server: a join is adopted (announced with the
// stream channel's CONNECTED event; leave and join work afterwards), a subscribe withdrawn
// (others see the user leave again; its messages do not arrive).

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, startServer, frozen, waitFor, rejectsWithCode } = require('./helpers')

let server

test.before(async () => {
  server = await startServer()
})

test.after(async () => {
  await closeAll()
  await server?.stop()
})

test.afterEach(closeAll)

async function loggedIn(prefix) {
  const c = track(new RTM(APP_ID, uniq(prefix), { endpoint: server.endpoint }))
  await c.login()
  return c
}

test('a join that timed out on a stalled server is adopted and announced', async () => {
  const a = await loggedIn('late-join')
  const name = uniq('stage.')
  const sc = a.createStreamChannel(name)
  const connected = waitFor(a, 'linkState', (s) => s.serviceType === 'STREAM' && s.channelName === name && s.currentState === 'CONNECTED')
  await frozen(server, async () => {
    await rejectsWithCode(assert, sc.join({ timeoutMs: 300 }), ErrorCode.CHANNEL_JOIN_FAILED, 'join')
    assert.equal(sc.isJoined(), false)
  })
  const s = await connected
  assert.equal(s.reasonCode, 'JOIN_SUCCESS')
  assert.equal(sc.isJoined(), true)
  // Not stuck: a topic, leave and a new join work.
  await sc.joinTopic('t')
  await sc.leave()
  assert.equal(sc.isJoined(), false)
  await sc.join()
  await sc.leave()
})

test('a subscribe that timed out on a stalled server is withdrawn', async () => {
  const slow = await loggedIn('late-sub')
  const watcher = await loggedIn('watcher')
  const room = uniq('room.')
  const sync = uniq('sync.')
  await watcher.subscribe(room)
  await slow.subscribe(sync)
  const by = (type) => (e) => e.eventType === type && e.channelName === room && e.publisher === slow.userId
  const joined = waitFor(watcher, 'presence', by('REMOTE_JOIN'))
  const left = waitFor(watcher, 'presence', by('REMOTE_LEAVE'))
  await frozen(server, async () => {
    await rejectsWithCode(assert, slow.subscribe(room, { timeoutMs: 300 }), ErrorCode.CHANNEL_SUBSCRIBE_TIMEOUT, 'subscribe')
  })
  assert.deepEqual(slow.subscribedChannels(), [sync])
  await joined // the server subscribed it late ...
  await left // ... and the client withdrew it
  const now = await watcher.presence.whoNow(room)
  assert.deepEqual(now.occupants.map((u) => u.userId), [watcher.userId])

  const marker = waitFor(slow, 'message', (m) => m.channelName === room || m.channelName === sync)
  await watcher.publish(room, 'not for the slow client')
  await watcher.publish(sync, 'marker')
  const m = await marker
  assert.deepEqual([m.channelName, m.message], [sync, 'marker'])
})
