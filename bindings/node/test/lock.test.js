'use strict'
// Locks (rtm.lock and 'lock' events): set/get/remove/acquire/release/revoke, the server-side
// queue of retrying acquirers (granted on release or revoke, failed by remove), concurrent
// acquirers, error codes, timeouts and AbortSignal; an owner whose process is killed keeps its
// lock for the ttl (`rtm2 serve --ttl-unit-ms 100`), and hears EXPIRED when it comes back.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMLock, RTMTimeoutError, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, waitFor, within, startServer, startGhost, rejectsWithCode } = require('./helpers')

test.afterEach(closeAll)

async function loggedIn(prefix, config = {}) {
  const c = track(new RTM(APP_ID, uniq(prefix), config))
  await c.login()
  return c
}

const isLock = (type, channel, lockName, pred = () => true) => (e) =>
  e.eventType === type && e.channelName === channel && (lockName === undefined || e.lockName === lockName) && pred(e)

/** `name:owner` of every lock of a channel. */
async function owners(client, ch, type = 'MESSAGE') {
  const r = await client.lock.getLock(ch, type)
  return r.lockDetails.map((d) => `${d.lockName}:${d.owner}`).sort()
}

/** Tracks whether a promise settled (to check that an acquisition is still waiting). */
function watch(promise) {
  const w = { settled: false, promise }
  promise.then(
    () => (w.settled = true),
    () => (w.settled = true),
  )
  return w
}

test('set, get, acquire, release, remove, with their events', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const ch = uniq('room')
  assert.ok(alice.lock instanceof RTMLock)

  const snap = waitFor(carol, 'lock', isLock('SNAPSHOT', ch))
  await carol.subscribe(ch, { withMessage: false, withPresence: false, withLock: true })
  const s = await snap
  assert.deepEqual({ ...s, timestamp: 0 }, {
    eventType: 'SNAPSHOT',
    channelType: 'MESSAGE',
    channelName: ch,
    lockName: '',
    ttl: 0,
    owner: '',
    publisher: '',
    snapshot: [],
    timestamp: 0,
    fencingToken: 0,
  })
  assert.ok(s.timestamp > 0)

  let ev = waitFor(carol, 'lock', isLock('SET', ch, 'door'))
  const { timestamp, ...setLock } = await alice.lock.setLock(ch, 'MESSAGE', 'door', { ttl: 30 })
  assert.deepEqual(setLock, { channelName: ch, channelType: 'MESSAGE', lockName: 'door' })
  assert.ok(timestamp > 0, 'the server time of the answer')
  const set = await ev
  assert.deepEqual([set.ttl, set.owner, set.publisher, set.snapshot], [30, '', alice.userId, []])
  // ttl defaults to 10 and is clamped to 10..300.
  await alice.lock.setLock(ch, 'MESSAGE', 'dflt')
  await alice.lock.setLock(ch, 'MESSAGE', 'tiny', { ttl: 1 })
  await alice.lock.setLock(ch, 'MESSAGE', 'huge', { ttl: 100_000 })
  const all = await bob.lock.getLock(ch, 'MESSAGE')
  assert.equal(all.channelName, ch)
  assert.equal(all.channelType, 'MESSAGE')
  assert.equal(all.totalLocks, 4)
  assert.deepEqual(
    all.lockDetails.slice().sort((x, y) => (x.lockName < y.lockName ? -1 : 1)),
    [
      { lockName: 'dflt', owner: '', ttl: 10, fencingToken: 0 },
      { lockName: 'door', owner: '', ttl: 30, fencingToken: 0 },
      { lockName: 'huge', owner: '', ttl: 300, fencingToken: 0 },
      { lockName: 'tiny', owner: '', ttl: 10, fencingToken: 0 },
    ],
  )
  assert.ok(all.timestamp > 0, 'the server time of the answer')
  // The same answer, at another time.
  const again = async (p) => ({ ...(await p), timestamp: all.timestamp })
  assert.deepEqual(await again(bob.lock.getLock(ch)), all, 'the channel type defaults to MESSAGE')
  assert.deepEqual(await again(bob.lock.getLocks(ch, 'MESSAGE')), all, 'getLocks: the name of the other bindings')

  ev = waitFor(carol, 'lock', isLock('ACQUIRED', ch, 'door'))
  const granted = await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
  const token = granted.fencingToken
  assert.ok(Number.isInteger(token) && token > 0, `a fencing token: ${token}`)
  assert.deepEqual(granted, { channelName: ch, channelType: 'MESSAGE', lockName: 'door', fencingToken: token, timestamp: granted.timestamp })
  assert.ok(granted.timestamp >= all.timestamp, 'the server time of the grant')
  const acq = await ev
  assert.deepEqual([acq.owner, acq.publisher, acq.ttl, acq.fencingToken], [alice.userId, alice.userId, 30, token])
  // The owner again: fine, the same grant.
  assert.equal((await alice.lock.acquireLock(ch, 'MESSAGE', 'door')).fencingToken, token)
  await rejectsWithCode(assert, bob.lock.acquireLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_ACQUIRE_FAILED, 'acquire_lock')
  await rejectsWithCode(assert, bob.lock.releaseLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_NOT_ACQUIRED, 'release_lock')
  assert.deepEqual(await owners(bob, ch), ['dflt:', `door:${alice.userId}`, 'huge:', 'tiny:'])

  // A new subscriber's snapshot lists every lock with its owner.
  const dave = await loggedIn('dave')
  const dSnap = waitFor(dave, 'lock', isLock('SNAPSHOT', ch))
  await dave.subscribe(ch, { withLock: true })
  const ds = (await dSnap).snapshot.find((d) => d.lockName === 'door')
  assert.deepEqual(ds, { lockName: 'door', owner: alice.userId, ttl: 30, fencingToken: token })

  ev = waitFor(carol, 'lock', isLock('RELEASED', ch, 'door'))
  await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  const rel = await ev
  assert.deepEqual([rel.owner, rel.publisher], [alice.userId, alice.userId])

  ev = waitFor(carol, 'lock', isLock('REMOVED', ch, 'door'))
  await bob.lock.removeLock(ch, 'MESSAGE', 'door')
  assert.equal((await ev).publisher, bob.userId)
  await rejectsWithCode(assert, bob.lock.removeLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_NOT_EXIST, 'remove_lock')
  await rejectsWithCode(assert, bob.lock.acquireLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_NOT_EXIST)
  await rejectsWithCode(assert, bob.lock.releaseLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_NOT_EXIST)
  assert.deepEqual(await owners(bob, ch), ['dflt:', 'huge:', 'tiny:'])
})

test('errors: exists 14004, invalid name 14005, USER 10019, 33rd lock 14001, revoke 14006', async () => {
  const alice = await loggedIn('alice')
  const ch = uniq('errs')
  await alice.lock.setLock(ch, 'MESSAGE', 'l')
  await rejectsWithCode(assert, alice.lock.setLock(ch, 'MESSAGE', 'l'), ErrorCode.LOCK_ALREADY_EXIST, 'set_lock')
  await rejectsWithCode(assert, alice.lock.setLock(ch, 'MESSAGE', 'bad/name'), ErrorCode.LOCK_INVALID_NAME)
  await rejectsWithCode(assert, alice.lock.setLock(ch, 'MESSAGE', '_reserved'), ErrorCode.LOCK_INVALID_NAME)
  await rejectsWithCode(assert, alice.lock.acquireLock(ch, 'MESSAGE', 'x'.repeat(65)), ErrorCode.LOCK_INVALID_NAME)
  await rejectsWithCode(assert, alice.lock.setLock(ch, 'USER', 'l'), ErrorCode.INVALID_CHANNEL_TYPE, 'set_lock')
  await rejectsWithCode(assert, alice.lock.getLock(ch, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE, 'get_locks')
  await rejectsWithCode(assert, alice.lock.setLock('bad/channel', 'MESSAGE', 'l'), ErrorCode.INVALID_CHANNEL_NAME)
  await rejectsWithCode(assert, alice.lock.revokeLock(ch, 'MESSAGE', 'l', 'bad/user'), ErrorCode.INVALID_USER_ID, 'revoke_lock')
  await rejectsWithCode(assert, alice.lock.revokeLock(ch, 'MESSAGE', 'l', alice.userId), ErrorCode.LOCK_NOT_ACQUIRED, 'revoke_lock')
  for (let i = 1; i < 32; i++) await alice.lock.setLock(ch, 'MESSAGE', `l${i}`)
  await rejectsWithCode(assert, alice.lock.setLock(ch, 'MESSAGE', 'l32'), ErrorCode.LOCK_OPERATION_FAILED)
  // Stream channels have locks of their own.
  await alice.lock.setLock(ch, 'STREAM', 'l')
  assert.deepEqual(await owners(alice, ch, 'STREAM'), ['l:'])

  const early = track(new RTM(APP_ID, uniq('early')))
  await rejectsWithCode(assert, early.lock.setLock(ch, 'MESSAGE', 'l'), ErrorCode.NOT_LOGIN, 'set_lock')
  await early.close()
  await rejectsWithCode(assert, early.lock.getLock(ch, 'MESSAGE'), ErrorCode.INSTANCE_ALREADY_RELEASED, 'get_locks')
})

test('stream channels: lock events through join withLock; a namespace of their own', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const name = uniq('stage')
  await alice.lock.setLock(name, 'STREAM', 'mic')
  await alice.lock.setLock(name, 'MESSAGE', 'other')
  const snap = waitFor(bob, 'lock', (e) => e.eventType === 'SNAPSHOT' && e.channelName === name)
  await bob.createStreamChannel(name).join({ withLock: true, withPresence: false })
  const s = await snap
  assert.equal(s.channelType, 'STREAM')
  assert.deepEqual(s.snapshot, [{ lockName: 'mic', owner: '', ttl: 10, fencingToken: 0 }])
  const acquired = waitFor(bob, 'lock', isLock('ACQUIRED', name, 'mic'))
  await alice.lock.acquireLock(name, 'STREAM', 'mic')
  const a = await acquired
  assert.deepEqual([a.channelType, a.owner], ['STREAM', alice.userId])
  assert.deepEqual(await owners(bob, name, 'STREAM'), [`mic:${alice.userId}`])
  assert.deepEqual(await owners(bob, name, 'MESSAGE'), ['other:'])
})

test('a retrying acquirer waits without blocking and gets the lock on release', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const ch = uniq('queue')
  await carol.subscribe(ch, { withLock: true })
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  await alice.lock.acquireLock(ch, 'MESSAGE', 'door')

  const waiting = watch(bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true }))
  // The event loop and the client keep working meanwhile; the acquisition is still waiting
  // after later requests of the same client were answered.
  assert.deepEqual(await owners(bob, ch), [`door:${alice.userId}`])
  await bob.publish(ch, 'still working')
  assert.equal(waiting.settled, false)

  const released = waitFor(carol, 'lock', isLock('RELEASED', ch, 'door'))
  const acquired = waitFor(carol, 'lock', isLock('ACQUIRED', ch, 'door'))
  await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  const granted = await within(waiting.promise)
  assert.ok(granted.fencingToken > 0, `a fencing token: ${granted.fencingToken}`)
  assert.deepEqual(granted, {
    channelName: ch,
    channelType: 'MESSAGE',
    lockName: 'door',
    fencingToken: granted.fencingToken,
    timestamp: granted.timestamp,
  })
  assert.equal((await released).owner, alice.userId)
  const a = await acquired
  assert.deepEqual([a.owner, a.fencingToken], [bob.userId, granted.fencingToken])
  assert.deepEqual(await owners(alice, ch), [`door:${bob.userId}`])
})

test('revoke frees a lock held by the named owner; the next waiter gets it', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const ch = uniq('revoke')
  await carol.subscribe(ch, { withLock: true })
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  await bob.lock.acquireLock(ch, 'MESSAGE', 'door')
  const waiting = watch(carol.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true }))

  await rejectsWithCode(assert, alice.lock.revokeLock(ch, 'MESSAGE', 'door', alice.userId), ErrorCode.LOCK_NOT_ACQUIRED)
  const released = waitFor(carol, 'lock', isLock('RELEASED', ch, 'door'))
  const { timestamp, ...revoked } = await alice.lock.revokeLock(ch, 'MESSAGE', 'door', bob.userId)
  assert.deepEqual(revoked, { channelName: ch, channelType: 'MESSAGE', lockName: 'door' })
  assert.ok(timestamp > 0, 'the server time of the answer')
  const r = await released
  assert.deepEqual([r.owner, r.publisher], [bob.userId, alice.userId])
  await within(waiting.promise)
  assert.deepEqual(await owners(alice, ch), [`door:${carol.userId}`])
  await rejectsWithCode(assert, bob.lock.releaseLock(ch, 'MESSAGE', 'door'), ErrorCode.LOCK_NOT_ACQUIRED)
})

test('removing a lock fails its waiters with 14008', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const ch = uniq('remove')
  await alice.lock.setLock(ch, 'STREAM', 'door')
  await alice.lock.acquireLock(ch, 'STREAM', 'door')
  const failed = Promise.all([
    rejectsWithCode(assert, bob.lock.acquireLock(ch, 'STREAM', 'door', { retry: true }), ErrorCode.LOCK_NOT_EXIST, 'acquire_lock'),
    rejectsWithCode(assert, carol.lock.acquireLock(ch, 'STREAM', 'door', { retry: true }), ErrorCode.LOCK_NOT_EXIST, 'acquire_lock'),
  ])
  // Both requests are queued on the server once a later request of each client is answered.
  await owners(bob, ch, 'STREAM')
  await owners(carol, ch, 'STREAM')
  await alice.lock.removeLock(ch, 'STREAM', 'door')
  await failed
  assert.deepEqual(await owners(alice, ch, 'STREAM'), [])
})

test('many concurrent acquirers: never two owners, every waiter served once', async () => {
  const n = 8
  const ch = uniq('contended')
  const clients = []
  for (let i = 0; i < n; i++) clients.push(await loggedIn(`c${i}-`))
  const observer = await loggedIn('observer')
  await observer.subscribe(ch, { withLock: true, withPresence: false, withMessage: false })
  await observer.lock.setLock(ch, 'MESSAGE', 'mutex')

  // Without retry: exactly one of n simultaneous attempts wins.
  const results = await Promise.allSettled(clients.map((c) => c.lock.acquireLock(ch, 'MESSAGE', 'mutex')))
  const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [clients[i]] : []))
  assert.equal(winners.length, 1)
  for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.code, ErrorCode.LOCK_ACQUIRE_FAILED)
  const firstRelease = waitFor(observer, 'lock', isLock('RELEASED', ch, 'mutex'))
  await winners[0].lock.releaseLock(ch, 'MESSAGE', 'mutex')
  assert.equal((await firstRelease).owner, winners[0].userId)

  // With retry: the server hands the lock to one waiter at a time.
  const events = []
  observer.on('lock', (e) => {
    if (e.channelName === ch && (e.eventType === 'ACQUIRED' || e.eventType === 'RELEASED')) events.push(e)
  })
  let holders = 0
  let maxHolders = 0
  const order = []
  await Promise.all(
    clients.map(async (c) => {
      await c.lock.acquireLock(ch, 'MESSAGE', 'mutex', { retry: true })
      holders++
      maxHolders = Math.max(maxHolders, holders)
      order.push(c.userId)
      assert.deepEqual(await owners(c, ch), [`mutex:${c.userId}`])
      holders--
      await c.lock.releaseLock(ch, 'MESSAGE', 'mutex')
    }),
  )
  assert.equal(maxHolders, 1)
  assert.deepEqual(order.slice().sort(), clients.map((c) => c.userId).sort())
  // The observer saw ACQUIRED and RELEASED alternate, each RELEASED by the owner of the
  // ACQUIRED before it.
  if (events.length < 2 * n) await waitFor(observer, 'lock', () => events.length >= 2 * n)
  for (let i = 0; i < 2 * n; i += 2) {
    assert.equal(events[i].eventType, 'ACQUIRED')
    assert.equal(events[i + 1].eventType, 'RELEASED')
    assert.equal(events[i + 1].owner, events[i].owner)
  }
  assert.deepEqual(events.filter((e) => e.eventType === 'ACQUIRED').map((e) => e.owner), order)
})

test('timeoutMs bounds a retrying wait (14002); an AbortSignal rejects with its reason', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('bounded')
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
  const e = await rejectsWithCode(
    assert,
    bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, timeoutMs: 200 }),
    ErrorCode.LOCK_OPERATION_TIMEOUT,
    'acquire_lock',
  )
  assert.ok(e instanceof RTMTimeoutError)
  const ac = new AbortController()
  const reason = new Error('gave up')
  const p = bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, signal: ac.signal })
  setImmediate(() => ac.abort(reason))
  await assert.rejects(within(p), (x) => x === reason)
  await assert.rejects(bob.lock.acquireLock(ch, 'MESSAGE', 'door', { signal: AbortSignal.abort(reason) }), (x) => x === reason)
})

test('an abandoned retrying acquisition (signal or timeoutMs) is withdrawn, never granted later', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const dave = await loggedIn('dave')
  const observer = await loggedIn('observer')
  const ch = uniq('abandoned')
  await observer.subscribe(ch, { withLock: true })
  const acquiredBy = []
  observer.on('lock', (e) => {
    if (e.channelName === ch && e.eventType === 'ACQUIRED') acquiredBy.push(e.owner)
  })
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  await alice.lock.acquireLock(ch, 'MESSAGE', 'door')

  const ac = new AbortController()
  const aborted = bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, signal: ac.signal })
  await owners(bob, ch) // queued on the server
  ac.abort()
  await assert.rejects(within(aborted), (e) => e.name === 'AbortError')
  await rejectsWithCode(assert, carol.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, timeoutMs: 200 }), ErrorCode.LOCK_OPERATION_TIMEOUT)
  const waiting = watch(dave.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true }))
  await owners(dave, ch)

  // Released: the only waiter left is Dave.
  await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  await within(waiting.promise)
  assert.deepEqual(await owners(alice, ch), [`door:${dave.userId}`])
  // Released again: nobody waits any more, the lock stays free.
  const released = waitFor(observer, 'lock', isLock('RELEASED', ch, 'door', (e) => e.owner === dave.userId))
  await dave.lock.releaseLock(ch, 'MESSAGE', 'door')
  await released
  assert.deepEqual(await owners(bob, ch), ['door:'])
  assert.deepEqual(await owners(carol, ch), ['door:'])
  assert.ok(!acquiredBy.includes(carol.userId), 'the timed-out acquisition was never granted')
  assert.equal(acquiredBy.at(-1), dave.userId)
})

test('an aborted or timed-out acquisition has been withdrawn when its promise settles', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('settled')
  await alice.lock.setLock(ch, 'MESSAGE', 'door')
  for (let round = 0; round < 10; round++) {
    await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
    if (round % 2 === 0) {
      const ac = new AbortController()
      const aborted = bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, signal: ac.signal })
      await owners(bob, ch) // queued on the server
      ac.abort()
      await assert.rejects(within(aborted), (e) => e.name === 'AbortError')
    } else {
      await rejectsWithCode(
        assert,
        bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true, timeoutMs: 100 }),
        ErrorCode.LOCK_OPERATION_TIMEOUT,
      )
    }
    // No fence through bob's connection: the withdrawal is already on the server.
    await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
    assert.deepEqual(await owners(alice, ch), ['door:'], `round ${round}`)
  }
})

test.describe('owners that vanish: rtm2 serve --ttl-unit-ms 100', () => {
  let server
  test.before(async () => {
    server = await startServer(['--ttl-unit-ms', '100'])
  })
  test.after(async () => {
    await closeAll()
    await server?.stop()
  })
  const remote = (prefix) => loggedIn(prefix, { endpoint: server.endpoint })

  test("a killed process's lock is released after its ttl, to the next waiter", async () => {
    const carol = await remote('carol')
    const bob = await remote('bob')
    const ch = uniq('ghostly')
    await carol.subscribe(ch, { withLock: true })
    await carol.lock.setLock(ch, 'MESSAGE', 'keep', { ttl: 10 })
    const ghostId = uniq('ghost')
    const acquired = waitFor(carol, 'lock', isLock('ACQUIRED', ch, 'keep', (e) => e.owner === ghostId))
    const ghost = await startGhost(server.endpoint, ghostId, ch, { lock: 'keep' })
    await acquired
    const waiting = watch(bob.lock.acquireLock(ch, 'MESSAGE', 'keep', { retry: true }))
    await owners(bob, ch)

    const released = waitFor(carol, 'lock', isLock('RELEASED', ch, 'keep'))
    const started = Date.now()
    await ghost.kill()
    const r = await released
    assert.deepEqual([r.owner, r.publisher], [ghostId, ghostId])
    assert.ok(Date.now() - started >= 900, 'kept for its ttl (10 s of 100 ms) first')
    await within(waiting.promise)
    assert.deepEqual(await owners(carol, ch), [`keep:${bob.userId}`])
  })

  test('an owner that left hears EXPIRED when it logs in again after the ttl', async () => {
    const carol = await remote('carol')
    const alice = await remote('alice')
    const ch = uniq('expiry')
    await carol.subscribe(ch, { withLock: true })
    await carol.lock.setLock(ch, 'MESSAGE', 'door', { ttl: 10 })
    await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
    const released = waitFor(carol, 'lock', isLock('RELEASED', ch, 'door'))
    await alice.logout()
    assert.equal((await released).owner, alice.userId)
    // Alice does not listen to lock events of the channel: EXPIRED reaches her anyway.
    const expired = waitFor(alice, 'lock', isLock('EXPIRED', ch, 'door'))
    await alice.login()
    const e = await expired
    assert.deepEqual([e.owner, e.channelType, e.ttl], [alice.userId, 'MESSAGE', 10])
  })

  test('an owner back within the ttl keeps its lock', async () => {
    const alice = await remote('alice')
    const ch = uniq('back')
    await alice.lock.setLock(ch, 'MESSAGE', 'door', { ttl: 300 })
    await alice.lock.acquireLock(ch, 'MESSAGE', 'door')
    await alice.logout()
    await alice.login()
    assert.deepEqual(await owners(alice, ch), [`door:${alice.userId}`])
    await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  })
})

test('fencing tokens: strictly increasing grants, a stale token refused by a metadata write', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('bank')
  await alice.lock.setLock(ch, 'MESSAGE', 'vault')
  const t1 = (await alice.lock.acquireLock(ch, 'MESSAGE', 'vault')).fencingToken
  assert.ok(t1 > 0)
  const waiting = bob.lock.acquireLock(ch, 'MESSAGE', 'vault', { retry: true })
  await bob.lock.getLock(ch, 'MESSAGE') // the acquisition was sent
  await alice.lock.releaseLock(ch, 'MESSAGE', 'vault')
  const t2 = (await waiting).fencingToken
  assert.ok(t2 > t1, `${t2} after ${t1}`)
  const { lockDetails } = await alice.lock.getLock(ch, 'MESSAGE')
  assert.deepEqual(lockDetails, [{ lockName: 'vault', owner: bob.userId, ttl: 10, fencingToken: t2 }])
  await bob.lock.releaseLock(ch, 'MESSAGE', 'vault')
  const t3 = (await alice.lock.acquireLock(ch, 'MESSAGE', 'vault')).fencingToken
  assert.ok(t3 > t2, `${t3} after ${t2}`)

  const data = [{ key: 'balance', value: '100' }]
  await rejectsWithCode(
    assert,
    alice.storage.setChannelMetadata(ch, 'MESSAGE', data, { lockName: 'vault', fencingToken: t1 }),
    ErrorCode.STORAGE_LOCK_NOT_ACQUIRED,
  )
  const w = await alice.storage.setChannelMetadata(ch, 'MESSAGE', data, { lockName: 'vault', fencingToken: t3 })
  assert.equal(w.majorRevision, 1)
  await rejectsWithCode(
    assert,
    alice.storage.setChannelMetadata(ch, 'MESSAGE', data, { fencingToken: t3 }),
    ErrorCode.STORAGE_INVALID_ARGUMENT,
  )
})
