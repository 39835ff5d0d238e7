'use strict'
// Storage (rtm.storage and 'storage' events): channel and user metadata, revisions and
// compare-and-set, lockName, addTimeStamp / addUserId, user-metadata subscriptions, limits and
// error codes on the embedded server; timeouts and durable metadata (--data-dir) against
// `rtm2 serve`.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { RTM, RTMStorage, RTMTimeoutError, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, waitFor, within, startServer, frozen, rejectsWithCode } = require('./helpers')

test.afterEach(closeAll)

async function loggedIn(prefix, config = {}) {
  const c = track(new RTM(APP_ID, uniq(prefix), config))
  await c.login()
  return c
}

const isStorage = (type, target, pred = () => true) => (e) => e.eventType === type && e.channelName === target && pred(e)

/** The items of a metadata answer or event as `key:value`. */
const kv = (m) =>
  Object.entries(m.metadata)
    .map(([k, d]) => `${k}:${d.value}`)
    .sort()

test('channel metadata: set, update, remove, get; SNAPSHOT then UPDATE with the whole set', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('room')
  assert.ok(alice.storage instanceof RTMStorage)

  const snap = waitFor(bob, 'storage', isStorage('SNAPSHOT', ch))
  await bob.subscribe(ch, { withMessage: false, withPresence: false, withMetadata: true })
  const s = await snap
  assert.deepEqual(
    { ...s, timestamp: 0 },
    {
      eventType: 'SNAPSHOT',
      storageType: 'CHANNEL',
      channelType: 'MESSAGE',
      channelName: ch,
      publisher: '',
      data: { totalCount: 0, majorRevision: 0, metadata: {} },
      timestamp: 0,
    },
  )
  assert.ok(s.timestamp > 0)

  let update = waitFor(bob, 'storage', isStorage('UPDATE', ch))
  const w = await alice.storage.setChannelMetadata(ch, 'MESSAGE', [
    { key: 'topic', value: 'rust' },
    { key: 'owner', value: 'alice' },
  ])
  assert.deepEqual(w, { channelName: ch, channelType: 'MESSAGE', totalCount: 2, majorRevision: 1, timestamp: w.timestamp })
  assert.ok(w.timestamp > 0, 'the server time of the answer')
  const u = await update
  assert.equal(u.publisher, alice.userId)
  assert.equal(u.storageType, 'CHANNEL')
  assert.deepEqual(u.data, {
    totalCount: 2,
    majorRevision: 1,
    metadata: {
      owner: { value: 'alice', revision: 1, updated: 0, authorUid: '' },
      topic: { value: 'rust', revision: 1, updated: 0, authorUid: '' },
    },
  })

  // update changes existing items only; the event carries the whole set.
  update = waitFor(bob, 'storage', isStorage('UPDATE', ch, (e) => e.data.majorRevision === 2))
  await alice.storage.updateChannelMetadata(ch, 'MESSAGE', [{ key: 'topic', value: 'zig' }])
  assert.deepEqual(kv((await update).data), ['owner:alice', 'topic:zig'])
  await rejectsWithCode(
    assert,
    alice.storage.updateChannelMetadata(ch, 'MESSAGE', [{ key: 'missing', value: 'x' }]),
    ErrorCode.STORAGE_OUTDATED_REVISION,
    'update_channel_metadata',
  )

  const got = await bob.storage.getChannelMetadata(ch, 'MESSAGE')
  assert.equal(got.channelName, ch)
  assert.equal(got.channelType, 'MESSAGE')
  assert.equal(got.totalCount, 2)
  assert.equal(got.majorRevision, 2)
  assert.deepEqual(got.metadata.topic, { value: 'zig', revision: 2, updated: 0, authorUid: '' })
  assert.equal(got.metadata.owner.revision, 1)
  // The channel type defaults to MESSAGE.
  assert.deepEqual((await bob.storage.getChannelMetadata(ch)).metadata, got.metadata)

  // Remove by key (values do not matter), then everything; the major revision keeps counting.
  update = waitFor(bob, 'storage', isStorage('UPDATE', ch, (e) => e.data.majorRevision === 3))
  const r = await alice.storage.removeChannelMetadata(ch, 'MESSAGE', { data: [{ key: 'owner', value: 'ignored' }] })
  assert.deepEqual(r, { channelName: ch, channelType: 'MESSAGE', totalCount: 1, majorRevision: 3, timestamp: r.timestamp })
  assert.deepEqual(kv((await update).data), ['topic:zig'])
  update = waitFor(bob, 'storage', isStorage('UPDATE', ch, (e) => e.data.majorRevision === 4))
  assert.equal((await alice.storage.removeChannelMetadata(ch, 'MESSAGE')).totalCount, 0)
  assert.deepEqual((await update).data, { totalCount: 0, majorRevision: 4, metadata: {} })
  const empty = await alice.storage.getChannelMetadata(ch, 'MESSAGE')
  assert.deepEqual([empty.totalCount, empty.majorRevision, empty.metadata], [0, 4, {}])

  // A stream channel of the same name has its own metadata, and its events come with join.
  const sSnap = waitFor(bob, 'storage', (e) => e.eventType === 'SNAPSHOT' && e.channelType === 'STREAM')
  await bob.createStreamChannel(ch).join({ withMetadata: true, withPresence: false })
  assert.equal((await sSnap).data.majorRevision, 0)
  const sUpdate = waitFor(bob, 'storage', (e) => e.eventType === 'UPDATE' && e.channelType === 'STREAM')
  await alice.storage.setChannelMetadata(ch, 'STREAM', [{ key: 'k', value: 'stream' }])
  assert.deepEqual(kv((await sUpdate).data), ['k:stream'])
  assert.equal((await alice.storage.getChannelMetadata(ch, 'MESSAGE')).majorRevision, 4)
})

test('compare-and-set: major revision and item revisions (12014, 12005)', async () => {
  const alice = await loggedIn('alice')
  const ch = uniq('cas')
  const set = (data, options) => alice.storage.setChannelMetadata(ch, 'MESSAGE', data, options)
  const update = (data, options) => alice.storage.updateChannelMetadata(ch, 'MESSAGE', data, options)

  // majorRevision 0: only while the set is empty.
  assert.equal((await set([{ key: 'a', value: '1' }], { majorRevision: 0 })).majorRevision, 1)
  await rejectsWithCode(assert, set([{ key: 'a', value: '2' }], { majorRevision: 0 }), ErrorCode.STORAGE_OUTDATED_REVISION)
  // majorRevision N must match; -1 (default) does not check.
  await rejectsWithCode(assert, set([{ key: 'a', value: '2' }], { majorRevision: 2 }), ErrorCode.STORAGE_OUTDATED_REVISION, 'set_channel_metadata')
  assert.equal((await set([{ key: 'a', value: '2' }], { majorRevision: 1 })).majorRevision, 2)
  assert.equal((await set([{ key: 'a', value: '3' }], { majorRevision: -1 })).majorRevision, 3)

  // An item's revision is the major revision of the write that wrote it.
  await rejectsWithCode(assert, update([{ key: 'a', value: 'x', revision: 2 }]), ErrorCode.STORAGE_OUTDATED_REVISION)
  assert.equal((await update([{ key: 'a', value: 'x', revision: 3 }])).majorRevision, 4)
  // revision 0 on set: create only.
  await rejectsWithCode(assert, set([{ key: 'a', value: 'y', revision: 0 }]), ErrorCode.STORAGE_OUTDATED_REVISION)
  assert.equal((await set([{ key: 'b', value: 'new', revision: 0 }])).totalCount, 2)
  await rejectsWithCode(assert, set([{ key: 'c', value: 'z', revision: 7 }]), ErrorCode.STORAGE_OUTDATED_REVISION)
  // Both conditions in one call.
  await rejectsWithCode(assert, update([{ key: 'b', value: 'v', revision: 5 }], { majorRevision: 4 }), ErrorCode.STORAGE_OUTDATED_REVISION)
  assert.equal((await update([{ key: 'b', value: 'v', revision: 5 }], { majorRevision: 5 })).majorRevision, 6)
  const m = await alice.storage.getChannelMetadata(ch, 'MESSAGE')
  assert.deepEqual([m.metadata.a.revision, m.metadata.b.revision, m.majorRevision], [4, 6, 6])
  // Remove with revisions.
  await rejectsWithCode(
    assert,
    alice.storage.removeChannelMetadata(ch, 'MESSAGE', { data: [{ key: 'a', revision: 3 }] }),
    ErrorCode.STORAGE_OUTDATED_REVISION,
    'remove_channel_metadata',
  )
  assert.equal((await alice.storage.removeChannelMetadata(ch, 'MESSAGE', { data: [{ key: 'a', revision: 4 }], majorRevision: 6 })).totalCount, 1)

  // Invalid revisions (12005).
  await rejectsWithCode(assert, set([{ key: 'a', value: '1' }], { majorRevision: -2 }), ErrorCode.STORAGE_INVALID_REVISION)
  await rejectsWithCode(assert, set([{ key: 'a', value: '1', revision: -2 }]), ErrorCode.STORAGE_INVALID_REVISION)
  await rejectsWithCode(assert, update([{ key: 'b', value: '1', revision: 0 }]), ErrorCode.STORAGE_INVALID_REVISION)
  await rejectsWithCode(assert, update([{ key: 'b', value: '1' }], { majorRevision: 0 }), ErrorCode.STORAGE_INVALID_REVISION)
  await rejectsWithCode(assert, alice.storage.removeChannelMetadata(ch, 'MESSAGE', { majorRevision: 0 }), ErrorCode.STORAGE_INVALID_REVISION)
})

test('addTimeStamp and addUserId stamp the written items', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('stamps')
  const before = Date.now()
  await alice.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'both', value: '1' }], { addTimeStamp: true, addUserId: true })
  await bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'author', value: '1' }], { addUserId: true })
  await bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'time', value: '1' }], { addTimeStamp: true })
  await bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'none', value: '1' }])
  const { metadata } = await alice.storage.getChannelMetadata(ch, 'MESSAGE')
  assert.equal(metadata.both.authorUid, alice.userId)
  assert.ok(metadata.both.updated >= before - 60_000 && metadata.both.updated <= Date.now() + 60_000, 'a server time in ms')
  assert.deepEqual([metadata.author.authorUid, metadata.author.updated], [bob.userId, 0])
  assert.equal(metadata.time.authorUid, '')
  assert.ok(metadata.time.updated > 0)
  assert.deepEqual([metadata.none.authorUid, metadata.none.updated], ['', 0])
})

test('lockName: writes only while holding the lock (12008, 12007, 12004)', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('guarded')
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
  const w = await alice.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'v' }], { lockName: 'door' })
  assert.equal(w.majorRevision, 1)
  await rejectsWithCode(
    assert,
    bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'w' }], { lockName: 'door' }),
    ErrorCode.STORAGE_LOCK_NOT_ACQUIRED,
    'set_channel_metadata',
  )
  await rejectsWithCode(assert, bob.storage.updateChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'w' }], { lockName: 'door' }), ErrorCode.STORAGE_LOCK_NOT_ACQUIRED)
  await rejectsWithCode(assert, bob.storage.removeChannelMetadata(ch, 'MESSAGE', { lockName: 'door' }), ErrorCode.STORAGE_LOCK_NOT_ACQUIRED)
  await rejectsWithCode(assert, bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'w' }], { lockName: 'nolock' }), ErrorCode.STORAGE_LOCK_NOT_ACQUIRED)
  await rejectsWithCode(assert, bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'w' }], { lockName: 'bad/name' }), ErrorCode.STORAGE_INVALID_LOCK_NAME)
  // Without a lock name anyone may write.
  await bob.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'w' }])
  // User metadata takes no lock name.
  await rejectsWithCode(assert, alice.storage.setUserMetadata([{ key: 'x', value: '1' }], { lockName: 'door' }), ErrorCode.STORAGE_INVALID_ARGUMENT, 'set_user_metadata')
  // After a release the lock name no longer lets Alice write.
  await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  await rejectsWithCode(assert, alice.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'v' }], { lockName: 'door' }), ErrorCode.STORAGE_LOCK_NOT_ACQUIRED)
})

test('validation and limits carry the core codes', async () => {
  const alice = await loggedIn('alice')
  const ch = uniq('limits')
  const set = (data, type = 'MESSAGE', channel = ch) => alice.storage.setChannelMetadata(channel, type, data)
  const items = (n) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: 'v' }))

  await rejectsWithCode(assert, set(items(33)), ErrorCode.STORAGE_METADATA_ITEM_EXCEED_LIMITATION, 'set_channel_metadata')
  assert.equal((await set(items(32))).totalCount, 32)
  await rejectsWithCode(assert, set([]), ErrorCode.STORAGE_INVALID_METADATA_ITEM)
  await rejectsWithCode(assert, set([{ key: 'x'.repeat(33), value: 'v' }]), ErrorCode.STORAGE_KEY_LENGTH_OVERFLOW)
  await rejectsWithCode(assert, set([{ key: 'big', value: 'x'.repeat(16 * 1024 + 1) }]), ErrorCode.STORAGE_VALUE_LENGTH_OVERFLOW)
  await rejectsWithCode(assert, set([{ key: '_k', value: 'v' }]), ErrorCode.STORAGE_INVALID_KEY)
  await rejectsWithCode(assert, set([{ key: 'a', value: '1' }, { key: 'a', value: '2' }]), ErrorCode.STORAGE_DUPLICATE_KEY)
  await rejectsWithCode(assert, set([{ key: 'a', value: '1' }], 'USER'), ErrorCode.INVALID_CHANNEL_TYPE)
  await rejectsWithCode(assert, alice.storage.getChannelMetadata(ch, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE, 'get_channel_metadata')
  await rejectsWithCode(assert, set([{ key: 'a', value: '1' }], 'MESSAGE', 'bad/channel'), ErrorCode.INVALID_CHANNEL_NAME)
  // A whole set is at most 16 KB.
  const big = uniq('big')
  assert.equal((await set([{ key: 'big', value: 'x'.repeat(16000) }], 'MESSAGE', big)).totalCount, 1)
  await rejectsWithCode(assert, set([{ key: 'more', value: 'x'.repeat(1000) }], 'MESSAGE', big), ErrorCode.STORAGE_METADATA_LENGTH_OVERFLOW)
  await rejectsWithCode(assert, alice.storage.getUserMetadata({ userId: 'bad/user' }), ErrorCode.INVALID_USER_ID, 'get_user_metadata')
})

test('user metadata: anyone may write; subscribers get SNAPSHOT then UPDATE', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const other = await loggedIn('other')

  const snap = waitFor(bob, 'storage', isStorage('SNAPSHOT', alice.userId))
  const subscribed = await bob.storage.subscribeUserMetadata(alice.userId)
  assert.deepEqual(subscribed, { userId: alice.userId, timestamp: subscribed.timestamp })
  assert.ok(subscribed.timestamp > 0, 'the server time of the answer')
  const s = await snap
  assert.deepEqual([s.storageType, s.channelType, s.publisher, s.data], ['USER', 'NONE', '', { totalCount: 0, majorRevision: 0, metadata: {} }])

  // No userId: this client's metadata.
  let update = waitFor(bob, 'storage', isStorage('UPDATE', alice.userId))
  const w = await alice.storage.setUserMetadata([{ key: 'status', value: 'online' }], { addTimeStamp: true })
  assert.deepEqual(w, { userId: alice.userId, totalCount: 1, majorRevision: 1, timestamp: w.timestamp })
  const u = await update
  assert.deepEqual([u.storageType, u.publisher, kv(u.data), u.data.majorRevision], ['USER', alice.userId, ['status:online'], 1])
  assert.ok(u.data.metadata.status.updated > 0)

  // Someone else writes Alice's metadata.
  update = waitFor(bob, 'storage', isStorage('UPDATE', alice.userId, (e) => e.data.majorRevision === 2))
  const w2 = await bob.storage.setUserMetadata([{ key: 'note', value: 'hi' }], { userId: alice.userId, addUserId: true })
  assert.deepEqual(w2, { userId: alice.userId, totalCount: 2, majorRevision: 2, timestamp: w2.timestamp })
  const u2 = await update
  assert.equal(u2.publisher, bob.userId)
  assert.deepEqual(kv(u2.data), ['note:hi', 'status:online'])
  assert.equal(u2.data.metadata.note.authorUid, bob.userId)

  update = waitFor(bob, 'storage', isStorage('UPDATE', alice.userId, (e) => e.data.majorRevision === 3))
  await alice.storage.updateUserMetadata([{ key: 'status', value: 'away', revision: 1 }], { majorRevision: 2 })
  assert.deepEqual(kv((await update).data), ['note:hi', 'status:away'])
  await rejectsWithCode(assert, alice.storage.updateUserMetadata([{ key: 'nope', value: '1' }]), ErrorCode.STORAGE_OUTDATED_REVISION, 'update_user_metadata')

  const got = await other.storage.getUserMetadata({ userId: alice.userId })
  assert.deepEqual([got.userId, got.totalCount, got.majorRevision], [alice.userId, 2, 3])
  const own = await alice.storage.getUserMetadata()
  assert.deepEqual(own, { ...got, timestamp: own.timestamp }, 'no userId: this client')
  assert.ok(got.timestamp > 0 && own.timestamp >= got.timestamp, 'the server time of each answer')

  update = waitFor(bob, 'storage', isStorage('UPDATE', alice.userId, (e) => e.data.majorRevision === 4))
  const removed = await alice.storage.removeUserMetadata({ data: [{ key: 'note' }] })
  assert.deepEqual(removed, { userId: alice.userId, totalCount: 1, majorRevision: 4, timestamp: removed.timestamp })
  assert.deepEqual(kv((await update).data), ['status:away'])

  // After unsubscribing, Bob gets no more of Alice's updates (events are ordered: Carol's
  // update, written later, comes first).
  const unsubscribed = await bob.storage.unsubscribeUserMetadata(alice.userId)
  assert.deepEqual(unsubscribed, { userId: alice.userId, timestamp: unsubscribed.timestamp })
  assert.ok(unsubscribed.timestamp >= subscribed.timestamp)
  await rejectsWithCode(assert, bob.storage.unsubscribeUserMetadata(alice.userId), ErrorCode.STORAGE_NOT_SUBSCRIBE, 'unsubscribe_user_metadata')
  const carol = await loggedIn('carol')
  const carolSnap = waitFor(bob, 'storage', isStorage('SNAPSHOT', carol.userId))
  await bob.storage.subscribeUserMetadata(carol.userId)
  await carolSnap
  const seen = []
  const record = (e) => seen.push(`${e.eventType}:${e.channelName}`)
  bob.on('storage', record)
  const carolUpdate = waitFor(bob, 'storage', isStorage('UPDATE', carol.userId))
  await alice.storage.removeUserMetadata()
  await carol.storage.setUserMetadata([{ key: 'k', value: 'v' }])
  await carolUpdate
  bob.off('storage', record)
  assert.deepEqual(seen, [`UPDATE:${carol.userId}`])
  assert.equal((await alice.storage.getUserMetadata()).majorRevision, 5)
})

test('at most 50 subscribed users (12017); subscribing again is fine', async () => {
  const bob = await loggedIn('bob')
  const prefix = uniq('u')
  for (let i = 0; i < 50; i++) await bob.storage.subscribeUserMetadata(`${prefix}-${i}`)
  await bob.storage.subscribeUserMetadata(`${prefix}-0`)
  await rejectsWithCode(assert, bob.storage.subscribeUserMetadata(`${prefix}-50`), ErrorCode.STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION, 'subscribe_user_metadata')
  await bob.storage.unsubscribeUserMetadata(`${prefix}-0`)
  await bob.storage.subscribeUserMetadata(`${prefix}-50`)
})

test('before login (10002) and after close (10018)', async () => {
  const c = track(new RTM(APP_ID, uniq('early')))
  await rejectsWithCode(assert, c.storage.getChannelMetadata('room', 'MESSAGE'), ErrorCode.NOT_LOGIN, 'get_channel_metadata')
  await rejectsWithCode(assert, c.storage.setUserMetadata([{ key: 'k', value: 'v' }]), ErrorCode.NOT_LOGIN)
  await rejectsWithCode(assert, c.storage.subscribeUserMetadata('someone'), ErrorCode.NOT_LOGIN)
  await c.close()
  await rejectsWithCode(assert, c.storage.getUserMetadata(), ErrorCode.INSTANCE_ALREADY_RELEASED, 'get_user_metadata')
})

test('against rtm2 serve: 12018 on timeout; metadata kept in --data-dir survives a restart', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtm2-node-data-'))
  let server = await startServer(['--data-dir', dir])
  try {
    const a = await loggedIn('a', { endpoint: server.endpoint })
    const ch = uniq('durable')
    await a.storage.setChannelMetadata(ch, 'MESSAGE', [{ key: 'k', value: 'kept' }])
    await a.storage.setUserMetadata([{ key: 'u', value: 'kept too' }])

    await frozen(server, async () => {
      const e = await rejectsWithCode(assert, a.storage.getChannelMetadata(ch, 'MESSAGE', { timeoutMs: 200 }), ErrorCode.STORAGE_OPERATION_TIMEOUT, 'get_channel_metadata')
      assert.ok(e instanceof RTMTimeoutError)
      // (A request that timed out is not recalled: this one is still applied once the server
      // runs again, so it writes another user's metadata than the one checked below.)
      const w = a.storage.setUserMetadata([{ key: 'k', value: 'v' }], { userId: uniq('other'), timeoutMs: 200 })
      await rejectsWithCode(assert, w, ErrorCode.STORAGE_OPERATION_TIMEOUT, 'set_user_metadata')
      const reason = new Error('gave up')
      const ac = new AbortController()
      const p = a.storage.subscribeUserMetadata('someone', { signal: ac.signal })
      ac.abort(reason)
      await assert.rejects(within(p), (x) => x === reason)
    })
    await a.close()

    await server.stop()
    server = await startServer(['--data-dir', dir])
    const b = await loggedIn('b', { endpoint: server.endpoint })
    assert.deepEqual(kv(await b.storage.getChannelMetadata(ch, 'MESSAGE')), ['k:kept'])
    assert.deepEqual(kv(await b.storage.getUserMetadata({ userId: a.userId })), ['u:kept too'])
  } finally {
    await closeAll()
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
