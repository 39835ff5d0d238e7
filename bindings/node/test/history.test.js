'use strict'
// Message history (`rtm.history.getMessages`, `publish(..., { storeInHistory: true })`), through
// `rtm2 serve` and the embedded server: stored publishes read back newest first a page at a time
// (newStart paging), a message not stored is absent, a user channel's history is its owner's
// (15004 for another user), 15002 for an invalid range, a publish to an offline user is stored
// (11035) and read after login, and encrypted history is readable with the same key only.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMHistory, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, within, startServer, rejectsWithCode } = require('./helpers')

const SALT = new TextEncoder().encode('0123456789abcdef0123456789abcdef')

let server
test.before(async () => {
  server = await startServer()
})
test.after(async () => {
  await server?.stop()
})
test.afterEach(closeAll)

async function loggedIn(prefix, config = {}, userId = uniq(prefix)) {
  const rtm = track(new RTM(APP_ID, userId, config))
  await within(rtm.login(), undefined, `${prefix}'s login`)
  return rtm
}

/** Every stored message of a channel, newest first, `messageCount` per page (bounded). */
async function allPages(rtm, channelName, channelType = 'MESSAGE', messageCount = 2) {
  const got = []
  let start = 0
  for (let i = 0; i < 100; i++) {
    const page = await within(rtm.history.getMessages(channelName, channelType, { messageCount, start }))
    assert.equal(page.count, page.messageList.length)
    assert.ok(page.count <= messageCount)
    got.push(...page.messageList)
    if (page.newStart === 0) return got
    if (start !== 0) assert.ok(page.newStart < start)
    start = page.newStart
  }
  assert.fail('paging did not end')
}

for (const where of ['rtm2 serve', 'embedded']) {
  const endpointOf = () => (where === 'embedded' ? 'embedded' : server.endpoint)

  test(`stored messages come back newest first, page by page (${where})`, async () => {
    const endpoint = endpointOf()
    const alice = await loggedIn('alice', { endpoint })
    const bob = await loggedIn('bob', { endpoint })
    assert.ok(bob.history instanceof RTMHistory)
    const room = uniq('room')
    const seen = []
    bob.on('message', (m) => m.channelName === room && seen.push(m))
    await bob.subscribe(room)
    for (let i = 0; i < 5; i++) await alice.publish(room, `m${i}`, { customType: 'note', storeInHistory: true })
    await alice.publish(room, 'not stored')
    await alice.publish(room, new Uint8Array([0, 1, 255]), { storeInHistory: true })

    const got = await allPages(bob, room)
    assert.deepEqual(
      got.map((m) => m.message),
      [new Uint8Array([0, 1, 255]), 'm4', 'm3', 'm2', 'm1', 'm0'],
    )
    assert.ok(got[0].message instanceof Uint8Array)
    assert.deepEqual(got.map((m) => m.messageType), ['BINARY', 'STRING', 'STRING', 'STRING', 'STRING', 'STRING'])
    assert.deepEqual(got.slice(1).map((m) => m.customType), ['note', 'note', 'note', 'note', 'note'])
    assert.ok(got.every((m) => m.publisher === alice.userId && typeof m.timestamp === 'number'))
    for (let i = 1; i < got.length; i++) assert.ok(got[i - 1].timestamp > got[i].timestamp)
    assert.deepEqual(Object.keys(got[1]).sort(), ['customType', 'message', 'messageType', 'publisher', 'timestamp'])

    // The first page of two and its shape (agora-rtm-sdk's).
    const first = await within(bob.history.getMessages(room, undefined, { messageCount: 2 }))
    assert.deepEqual(Object.keys(first).sort(), ['count', 'messageList', 'newStart', 'timestamp'])
    assert.equal(first.count, 2)
    assert.equal(first.newStart, got[1].timestamp)
    // start exclusive, end inclusive.
    const between = await within(bob.history.getMessages(room, 'MESSAGE', { start: got[0].timestamp, end: got[3].timestamp }))
    assert.deepEqual(between.messageList.map((m) => m.message), ['m4', 'm3', 'm2'])
    assert.equal(between.newStart, 0)
    // An empty channel.
    const empty = await within(bob.history.getMessages(uniq('empty')))
    assert.deepEqual(empty, { messageList: [], count: 0, newStart: 0, timestamp: empty.timestamp })
    // The delivered messages carry the stored timestamps.
    const until = Date.now() + 10_000
    while (seen.length < 7 && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
    assert.equal(seen.length, 7)
    assert.equal(seen[0].timestamp, got[5].timestamp)
  })

  test(`history errors (${where})`, async () => {
    const alice = await loggedIn('alice', { endpoint: endpointOf() })
    const room = uniq('room')
    await rejectsWithCode(assert, alice.history.getMessages(room, 'MESSAGE', { start: 1000, end: 1000 }), ErrorCode.HISTORY_INVALID_TIMESTAMP)
    await rejectsWithCode(assert, alice.history.getMessages(room, 'MESSAGE', { start: 1000, end: 2000 }), ErrorCode.HISTORY_INVALID_TIMESTAMP)
    await rejectsWithCode(assert, alice.history.getMessages(room, 'STREAM'), ErrorCode.INVALID_CHANNEL_TYPE)
    await rejectsWithCode(assert, alice.history.getMessages(room, 'NOPE'), ErrorCode.INVALID_CHANNEL_TYPE)
    await rejectsWithCode(assert, alice.history.getMessages('bad channel!\n'), ErrorCode.INVALID_CHANNEL_NAME)
    await rejectsWithCode(assert, alice.history.getMessages(room, 'MESSAGE', { start: -1 }), ErrorCode.INVALID_PARAMETER)
  })

  test(`a user channel's history is its owner's; an offline user reads theirs after login (${where})`, async () => {
    const endpoint = endpointOf()
    const alice = await loggedIn('alice', { endpoint })
    const bob = await loggedIn('bob', { endpoint })
    await within(alice.publish(bob.userId, new Uint8Array([1, 2, 3]), { channelType: 'USER', storeInHistory: true }))
    const mine = await within(bob.history.getMessages(bob.userId, 'USER'))
    assert.deepEqual(
      mine.messageList.map((m) => [m.message, m.messageType, m.publisher]),
      [[new Uint8Array([1, 2, 3]), 'BINARY', alice.userId]],
    )
    await rejectsWithCode(assert, alice.history.getMessages(bob.userId, 'USER'), ErrorCode.HISTORY_OPERATION_NOT_PERMITTED)

    // An offline receiver: stored, and said so (11035); read after logging in.
    const carolId = uniq('carol')
    await rejectsWithCode(
      assert,
      alice.publish(carolId, 'later', { channelType: 'USER', storeInHistory: true }),
      ErrorCode.CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED,
    )
    const carol = await loggedIn('carol', { endpoint }, carolId)
    const hers = await within(carol.history.getMessages(carolId, 'USER'))
    assert.deepEqual(hers.messageList.map((m) => [m.message, m.publisher]), [['later', alice.userId]])
  })

  test(`encrypted history is read with the same key only (${where})`, async () => {
    const endpoint = endpointOf()
    const sealed = (key) => ({ endpoint, encryptionMode: 'AES_256_GCM', cipherKey: key, salt: SALT })
    const alice = await loggedIn('alice', sealed('k1'))
    const bob = await loggedIn('bob', sealed('k1'))
    const eve = await loggedIn('eve', sealed('k2'))
    const plain = await loggedIn('plain', { endpoint })
    const vault = uniq('vault')
    await within(alice.publish(vault, 'sealed words', { storeInHistory: true }))
    await within(alice.publish(vault, new Uint8Array([9, 8, 7]), { storeInHistory: true }))
    const page = await within(bob.history.getMessages(vault))
    assert.deepEqual(page.messageList.map((m) => m.message), [new Uint8Array([9, 8, 7]), 'sealed words'])
    for (const other of [eve, plain]) {
      const none = await within(other.history.getMessages(vault))
      assert.deepEqual(none, { messageList: [], count: 0, newStart: 0, timestamp: none.timestamp })
    }
  })
}

test('history after close fails with 10018', async () => {
  const rtm = track(new RTM(APP_ID, uniq('alice')))
  await rtm.close()
  await rejectsWithCode(assert, rtm.history.getMessages('room'), ErrorCode.INSTANCE_ALREADY_RELEASED)
})
