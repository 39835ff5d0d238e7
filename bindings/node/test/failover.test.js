'use strict'
// Client failover (docs/CLUSTER.md, "Client failover"): `endpoint` takes an array or a
// comma-separated string; a bad entry throws 10014; a dead first endpoint is skipped; and a
// client whose `rtm2 serve` dies moves to the next one, is told first which channels may have
// missed messages, and receives what is published there.

const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')

const { RTM, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, startServer, waitFor, throwsWithCode } = require('./helpers')

let a, b

test.before(async () => {
  a = await startServer()
  b = await startServer()
})

test.after(async () => {
  await closeAll()
  await a?.stop()
  await b?.stop()
})

/** A loopback endpoint nothing listens on. */
async function deadEndpoint() {
  const srv = net.createServer()
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address()
  await new Promise((resolve) => srv.close(resolve))
  return `tcp://127.0.0.1:${port}`
}

test('bad endpoint lists throw 10014 naming the entry', () => {
  for (const bad of ['127.0.0.1:1,,127.0.0.1:2', 'embedded,127.0.0.1:1', [], ['127.0.0.1:1', ''], ['a:1', 'nohostport']]) {
    throwsWithCode(assert, () => new RTM(APP_ID, uniq('bad'), { endpoint: bad }), ErrorCode.INVALID_PARAMETER)
  }
  const e = throwsWithCode(
    assert,
    () => new RTM(APP_ID, uniq('bad'), { endpoint: '127.0.0.1:1,127.0.0.1:99999' }),
    ErrorCode.INVALID_PARAMETER,
  )
  assert.match(e.message, /127\.0\.0\.1:99999/)
})

test('a dead first endpoint is skipped (string and array)', async () => {
  const asString = track(new RTM(APP_ID, uniq('str'), { endpoint: `${await deadEndpoint()},${b.endpoint}` }))
  await asString.login()
  const asArray = track(new RTM(APP_ID, uniq('arr'), { endpoint: [await deadEndpoint(), b.endpoint] }))
  assert.equal(asArray.connectedTo, null, 'not connected before the first login')
  await asArray.login()
  assert.equal(asArray.linkState, 'CONNECTED')
  assert.deepEqual(asArray.connectedTo, { endpoint: b.endpoint, nodeId: '' }, 'the live endpoint; no cluster node')
})

test('a client whose server dies moves to the next one', async () => {
  const room = uniq('room')
  const mover = track(
    new RTM(APP_ID, uniq('mover'), { endpoint: [a.endpoint, b.endpoint], parameters: { reconnect_initial_backoff_ms: 20 } }),
  )
  await mover.login()
  await mover.subscribe(room)
  const pub = track(new RTM(APP_ID, uniq('pub'), { endpoint: b.endpoint }))
  await pub.login()

  let messagesBeforeNotice = 0
  let noticed = false
  mover.on('message', () => {
    if (!noticed) messagesBeforeNotice++
  })
  const disconnected = waitFor(mover, 'linkState', (e) => e.serviceType === 'MESSAGE' && e.currentState === 'DISCONNECTED')
  const notice = waitFor(mover, 'linkState', (e) => {
    if (e.serviceType === 'MESSAGE' && e.currentState === 'CONNECTED') noticed = true
    return noticed
  })
  await a.stop()
  await disconnected
  const ev = await notice
  assert.equal(ev.isResumed, false)
  assert.ok(ev.affectedChannels.includes(room), `${ev.affectedChannels}`)
  assert.deepEqual(ev.unrestoredChannels, [])
  assert.equal(messagesBeforeNotice, 0)

  const got = waitFor(mover, 'message', (m) => m.channelName === room && m.message === 'on b')
  await pub.publish(room, 'on b')
  assert.equal((await got).publisher, pub.userId)
})
