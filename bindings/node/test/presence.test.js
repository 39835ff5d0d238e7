'use strict'
// Presence (rtm.presence and 'presence' events): state cached before subscribing, SNAPSHOT,
// REMOTE_JOIN / LEAVE / STATE_CHANGED with the full state, whoNow / whereNow, beQuiet, stream
// channels, limits and error codes on the embedded server; paging, REMOTE_TIMEOUT of a killed
// process and INTERVAL mode against `rtm2 serve` with its presence flags.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMPresence, RTMTimeoutError, ErrorCode } = require('rtm2')
const {
  APP_ID,
  uniq,
  track,
  closeAll,
  waitFor,
  within,
  startServer,
  startGhost,
  frozen,
  rejectsWithCode,
} = require('./helpers')

test.afterEach(closeAll)

function client(prefix, config = {}) {
  return track(new RTM(APP_ID, uniq(prefix), config))
}

async function loggedIn(prefix, config) {
  const c = client(prefix, config)
  await c.login()
  return c
}

const isPresence = (type, channel, publisher) => (e) =>
  e.eventType === type && e.channelName === channel && (publisher === undefined || e.publisher === publisher)

const ids = (users) => users.map((u) => u.userId).sort()

test('state set before subscribing is applied on subscribe; SNAPSHOT includes self', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const ch = uniq('lobby')
  assert.ok(alice.presence instanceof RTMPresence)

  // Not in the channel yet: the state is kept locally (nothing is sent).
  const { timestamp, ...kept } = await alice.presence.setState(ch, 'MESSAGE', { mood: 'happy' })
  assert.deepEqual(kept, { channelName: ch, channelType: 'MESSAGE' })
  assert.ok(timestamp > 0, "kept locally: this machine's time")
  const aSnap = waitFor(alice, 'presence', isPresence('SNAPSHOT', ch))
  await alice.subscribe(ch)
  const snap = await aSnap
  assert.deepEqual(
    { ...snap, timestamp: 0 },
    {
      eventType: 'SNAPSHOT',
      channelType: 'MESSAGE',
      channelName: ch,
      publisher: '',
      stateChanged: {},
      interval: null,
      snapshot: [{ userId: alice.userId, states: { mood: 'happy' }, statesCount: 1 }],
      timestamp: 0,
    },
  )
  assert.ok(snap.timestamp > 0)

  // Bob's snapshot lists both, with Alice's state; Alice hears Bob join.
  const bSnap = waitFor(bob, 'presence', isPresence('SNAPSHOT', ch))
  const join = waitFor(alice, 'presence', isPresence('REMOTE_JOIN', ch, bob.userId))
  await bob.subscribe(ch)
  const bs = await bSnap
  assert.deepEqual(ids(bs.snapshot), [alice.userId, bob.userId].sort())
  assert.deepEqual(bs.snapshot.find((u) => u.userId === alice.userId).states, { mood: 'happy' })
  const j = await join
  assert.equal(j.channelType, 'MESSAGE')
  assert.deepEqual(j.snapshot, [])
  assert.equal(j.interval, null)

  const { timestamp: at, ...got } = await bob.presence.getState(alice.userId, ch, 'MESSAGE')
  assert.deepEqual(got, { channelName: ch, channelType: 'MESSAGE', userId: alice.userId, states: { mood: 'happy' }, statesCount: 1 })
  assert.ok(at > 0, 'the server time of the answer')
})

test('REMOTE_STATE_CHANGED carries the full state; removeState; REMOTE_LEAVE', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol')
  const ch = uniq('room')
  await alice.subscribe(ch)
  const joined = waitFor(alice, 'presence', isPresence('REMOTE_JOIN', ch, bob.userId))
  await bob.subscribe(ch)
  await joined

  const changed = (pred) => waitFor(alice, 'presence', (e) => isPresence('REMOTE_STATE_CHANGED', ch, bob.userId)(e) && pred(e))
  let ev = changed(() => true)
  await bob.presence.setState(ch, 'MESSAGE', { role: 'host', seat: '1' })
  assert.deepEqual((await ev).stateChanged, { role: 'host', seat: '1' })

  // Every accepted state form: object, Map, [key, value] tuples, { key, value } items.
  ev = changed((e) => e.stateChanged.seat === '2')
  await bob.presence.setState(ch, 'MESSAGE', new Map([['seat', '2']]))
  assert.deepEqual((await ev).stateChanged, { role: 'host', seat: '2' })
  ev = changed((e) => e.stateChanged.mic === 'on')
  await bob.presence.setState(ch, 'MESSAGE', [['mic', 'on'], { key: 'cam', value: 'off' }])
  assert.deepEqual((await ev).stateChanged, { role: 'host', seat: '2', mic: 'on', cam: 'off' })

  ev = changed((e) => !('seat' in e.stateChanged))
  const { timestamp, ...removed } = await bob.presence.removeState(ch, 'MESSAGE', { states: ['seat', 'cam'] })
  assert.deepEqual(removed, { channelName: ch, channelType: 'MESSAGE' })
  assert.ok(timestamp > 0, 'the server time of the answer')
  assert.deepEqual((await ev).stateChanged, { role: 'host', mic: 'on' })
  assert.deepEqual((await carol.presence.getState(bob.userId, ch, 'MESSAGE')).states, { role: 'host', mic: 'on' })

  // removeState without keys removes everything.
  ev = changed((e) => Object.keys(e.stateChanged).length === 0)
  await bob.presence.removeState(ch, 'MESSAGE')
  await ev
  const cleared = await carol.presence.getState(bob.userId, ch, 'MESSAGE')
  assert.deepEqual(cleared, {
    channelName: ch,
    channelType: 'MESSAGE',
    userId: bob.userId,
    states: {},
    statesCount: 0,
    timestamp: cleared.timestamp,
  })

  // Leaving removes the user and its state.
  await bob.presence.setState(ch, 'MESSAGE', { k: 'v' })
  const left = waitFor(alice, 'presence', isPresence('REMOTE_LEAVE', ch, bob.userId))
  await bob.unsubscribe(ch)
  assert.equal((await left).channelType, 'MESSAGE')
  await rejectsWithCode(assert, carol.presence.getState(bob.userId, ch, 'MESSAGE'), ErrorCode.PRESENCE_USER_NOT_EXIST, 'get_state')
})

test('whoNow / getOnlineUsers options and whereNow / getUserChannels', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const carol = await loggedIn('carol') // asks without being in the channel
  const ch = uniq('room')
  await alice.presence.setState(ch, 'MESSAGE', { a: '1' })
  await alice.subscribe(ch)
  await bob.subscribe(ch)

  const who = await carol.presence.whoNow(ch, 'MESSAGE')
  assert.equal(who.channelName, ch)
  assert.equal(who.channelType, 'MESSAGE')
  assert.equal(who.totalOccupancy, 2)
  assert.equal(who.nextPage, '')
  assert.deepEqual(ids(who.occupants), [alice.userId, bob.userId].sort())
  // States only when asked for.
  assert.deepEqual(who.occupants.find((u) => u.userId === alice.userId).states, {})
  const withState = await carol.presence.getOnlineUsers(ch, 'MESSAGE', { includedState: true })
  assert.deepEqual(withState.occupants.find((u) => u.userId === alice.userId), { userId: alice.userId, states: { a: '1' }, statesCount: 1 })
  // The count only.
  const count = await carol.presence.whoNow(ch, 'MESSAGE', { includedUserId: false })
  assert.deepEqual([count.occupants, count.totalOccupancy], [[], 2])
  await rejectsWithCode(
    assert,
    carol.presence.whoNow(ch, 'MESSAGE', { includedUserId: false, includedState: true }),
    ErrorCode.PRESENCE_INVALID_ARGUMENT,
    'get_online_users',
  )
  // The channel type defaults to MESSAGE; an empty channel has no one.
  assert.equal((await carol.presence.whoNow(ch)).totalOccupancy, 2)
  assert.equal((await carol.presence.whoNow(uniq('empty'), 'MESSAGE')).totalOccupancy, 0)

  const { timestamp, ...where } = await carol.presence.whereNow(alice.userId)
  assert.deepEqual(where, { channels: [{ channelName: ch, channelType: 'MESSAGE' }], totalChannel: 1 })
  assert.ok(timestamp > 0, 'the server time of the answer')
  const own = await alice.presence.getUserChannels('')
  assert.deepEqual(own, { ...where, timestamp: own.timestamp }, "'' is this client")
  const none = await carol.presence.getUserChannels(carol.userId)
  assert.deepEqual(none, { channels: [], totalChannel: 0, timestamp: none.timestamp })
})

test('beQuiet sees everyone but is hidden; withPresence false is not present', async () => {
  const alice = await loggedIn('alice')
  const quiet = await loggedIn('quiet')
  const silent = await loggedIn('silent')
  const bob = await loggedIn('bob')
  const ch = uniq('room')
  // Every presence event Alice gets about someone else, from the start.
  const heard = []
  alice.on('presence', (e) => {
    if (e.channelName === ch && e.publisher !== '') heard.push(`${e.eventType}:${e.publisher}`)
  })
  await alice.subscribe(ch)

  const snap = waitFor(quiet, 'presence', isPresence('SNAPSHOT', ch))
  await quiet.subscribe(ch, { beQuiet: true })
  assert.deepEqual(ids((await snap).snapshot), [alice.userId, quiet.userId].sort())
  await quiet.presence.setState(ch, 'MESSAGE', { hidden: 'yes' })
  await silent.subscribe(ch, { withPresence: false })

  // Hidden from whoNow and whereNow.
  const who = await alice.presence.whoNow(ch, 'MESSAGE')
  assert.deepEqual([ids(who.occupants), who.totalOccupancy], [[alice.userId], 1])
  assert.deepEqual((await alice.presence.whereNow(quiet.userId)).channels, [])
  assert.deepEqual((await alice.presence.whereNow(silent.userId)).channels, [])

  // The quiet user still hears others; Alice heard nothing of the quiet or silent user (events
  // are ordered: anything about them would have come before Bob's join).
  const quietHears = waitFor(quiet, 'presence', isPresence('REMOTE_JOIN', ch, bob.userId))
  const aliceHears = waitFor(alice, 'presence', isPresence('REMOTE_JOIN', ch, bob.userId))
  await bob.subscribe(ch)
  await quietHears
  await aliceHears
  assert.deepEqual(heard, [`REMOTE_JOIN:${bob.userId}`])
})

test('stream channels: presence through join, a namespace of their own', async () => {
  const alice = await loggedIn('alice')
  const bob = await loggedIn('bob')
  const name = uniq('stage')
  await alice.subscribe(name) // a message channel of the same name

  const snap = waitFor(alice, 'presence', (e) => e.eventType === 'SNAPSHOT' && e.channelType === 'STREAM')
  await alice.createStreamChannel(name).join({ withPresence: true })
  assert.deepEqual(ids((await snap).snapshot), [alice.userId])
  await alice.presence.setState(name, 'STREAM', { on: 'stage' })

  const join = waitFor(alice, 'presence', (e) => e.eventType === 'REMOTE_JOIN' && e.channelType === 'STREAM')
  await bob.createStreamChannel(name).join()
  assert.equal((await join).publisher, bob.userId)
  const who = await bob.presence.whoNow(name, 'STREAM', { includedState: true })
  assert.deepEqual(ids(who.occupants), [alice.userId, bob.userId].sort())
  assert.deepEqual(who.occupants.find((u) => u.userId === alice.userId).states, { on: 'stage' })
  assert.deepEqual(ids((await bob.presence.whoNow(name, 'MESSAGE')).occupants), [alice.userId])
  assert.deepEqual(
    (await bob.presence.whereNow(alice.userId)).channels.map((c) => `${c.channelType}:${c.channelName}`).sort(),
    [`MESSAGE:${name}`, `STREAM:${name}`],
  )
  assert.deepEqual((await bob.presence.getState(alice.userId, name, 'MESSAGE')).states, {})

  // A quiet joiner is not listed.
  const carol = await loggedIn('carol')
  await carol.createStreamChannel(name).join({ beQuiet: true })
  assert.equal((await bob.presence.whoNow(name, 'STREAM')).totalOccupancy, 2)
})

test('state limits and argument errors carry the core codes', async () => {
  const alice = await loggedIn('alice')
  const ch = uniq('limits')
  await alice.subscribe(ch)
  const set = (state, type = 'MESSAGE', channel = ch) => alice.presence.setState(channel, type, state)
  const many = (n, prefix = 'k') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 'v']))

  await rejectsWithCode(assert, set(many(33)), ErrorCode.PRESENCE_STATE_COUNT_OVERFLOW, 'set_state')
  await rejectsWithCode(assert, set({ ['x'.repeat(33)]: 'v' }), ErrorCode.PRESENCE_STATE_KEY_SIZE_OVERFLOW)
  await set({ ['x'.repeat(32)]: 'v' })
  await rejectsWithCode(assert, set({ big: 'x'.repeat(16 * 1024 + 1) }), ErrorCode.PRESENCE_STATE_VALUE_SIZE_OVERFLOW)
  await set({ big: 'x'.repeat(16 * 1024) })
  await rejectsWithCode(assert, set({ _reserved: '1' }), ErrorCode.PRESENCE_INVALID_STATE_KEY)
  await rejectsWithCode(assert, set([['a', '1'], ['a', '2']]), ErrorCode.PRESENCE_STATE_DUPLICATE_KEY)
  await rejectsWithCode(assert, set({}), ErrorCode.PRESENCE_INVALID_ARGUMENT)
  await rejectsWithCode(assert, alice.presence.removeState(ch, 'MESSAGE', { states: ['_bad'] }), ErrorCode.PRESENCE_INVALID_STATE_KEY)
  // A state never has more than 32 keys: removing more at once is refused (as in C).
  const keys33 = Array.from({ length: 33 }, (_, i) => `k${i}`)
  await rejectsWithCode(assert, alice.presence.removeState(ch, 'MESSAGE', { states: keys33 }), ErrorCode.PRESENCE_STATE_COUNT_OVERFLOW)
  // 32 pairs at most, counted with the pairs already set (2 so far).
  await set(many(30))
  await rejectsWithCode(assert, set({ one: 'more' }), ErrorCode.PRESENCE_STATE_COUNT_OVERFLOW)
  await set({ k0: 'overwriting is fine' })

  // Channel types and names.
  await rejectsWithCode(assert, set({ a: 'b' }, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE, 'set_state')
  await rejectsWithCode(assert, set({ a: 'b' }, 'NOT_A_TYPE'), ErrorCode.INVALID_CHANNEL_TYPE)
  await rejectsWithCode(assert, alice.presence.whoNow(ch, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE, 'get_online_users')
  await rejectsWithCode(assert, alice.presence.getState(alice.userId, ch, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE)
  await rejectsWithCode(assert, alice.presence.removeState(ch, 'USER'), ErrorCode.INVALID_CHANNEL_TYPE)
  await rejectsWithCode(assert, set({ a: 'b' }, 'MESSAGE', 'bad/channel'), ErrorCode.INVALID_CHANNEL_NAME)
  await rejectsWithCode(assert, alice.presence.whereNow('bad/user'), ErrorCode.INVALID_USER_ID, 'get_user_channels')

  // At most 100 channels' state is kept before subscribing.
  const bob = await loggedIn('bob')
  const prefix = uniq('later')
  for (let i = 0; i < 100; i++) await bob.presence.setState(`${prefix}-${i}`, 'MESSAGE', { a: 'b' })
  await rejectsWithCode(assert, bob.presence.setState(`${prefix}-100`, 'MESSAGE', { a: 'b' }), ErrorCode.PRESENCE_CACHED_TOO_MANY_STATES)
  // Removing a cached state frees its place.
  await bob.presence.removeState(`${prefix}-0`, 'MESSAGE')
  await bob.presence.setState(`${prefix}-100`, 'MESSAGE', { a: 'b' })
})

test('before login (10002) and after close (10018)', async () => {
  const c = client('early')
  await rejectsWithCode(assert, c.presence.whoNow('room', 'MESSAGE'), ErrorCode.NOT_LOGIN, 'get_online_users')
  await rejectsWithCode(assert, c.presence.whereNow(''), ErrorCode.NOT_LOGIN)
  await rejectsWithCode(assert, c.presence.getState('u', 'room', 'MESSAGE'), ErrorCode.NOT_LOGIN)
  await rejectsWithCode(assert, c.presence.setState('room', 'MESSAGE', { a: 'b' }), ErrorCode.NOT_LOGIN, 'set_state')
  await rejectsWithCode(assert, c.presence.removeState('room', 'MESSAGE'), ErrorCode.NOT_LOGIN, 'remove_state')
  await c.close()
  await rejectsWithCode(assert, c.presence.setState('room', 'MESSAGE', { a: 'b' }), ErrorCode.INSTANCE_ALREADY_RELEASED, 'set_state')
  await rejectsWithCode(assert, c.presence.whoNow('room', 'MESSAGE'), ErrorCode.INSTANCE_ALREADY_RELEASED)
})

test.describe('against rtm2 serve --ttl-unit-ms 100 --presence-page-size 2', () => {
  let server
  test.before(async () => {
    server = await startServer(['--ttl-unit-ms', '100', '--presence-page-size', '2'])
  })
  test.after(async () => {
    await closeAll()
    await server?.stop()
  })
  const remote = (prefix) => loggedIn(prefix, { endpoint: server.endpoint })

  test('whoNow pages: nextPage walks every user once', async () => {
    const ch = uniq('paged')
    const users = []
    for (let i = 0; i < 5; i++) {
      const u = await remote(`u${i}-`)
      await u.subscribe(ch)
      users.push(u.userId)
    }
    const asker = await remote('asker')
    const seen = []
    let page
    let pages = 0
    do {
      const r = await asker.presence.whoNow(ch, 'MESSAGE', { page })
      assert.ok(r.occupants.length <= 2, 'a page has at most --presence-page-size users')
      assert.equal(r.totalOccupancy, 5, 'totalOccupancy counts every page')
      seen.push(...r.occupants.map((u) => u.userId))
      page = r.nextPage
      pages++
      assert.ok(pages <= 5, 'the pages end')
    } while (page !== '')
    assert.equal(pages, 3)
    assert.deepEqual(seen.slice().sort(), users.slice().sort())
    assert.equal(new Set(seen).size, 5, 'no user twice')
    await rejectsWithCode(assert, asker.presence.whoNow(ch, 'MESSAGE', { page: 'not/a page' }), ErrorCode.PRESENCE_INVALID_ARGUMENT)
  })

  test('a killed process times out: REMOTE_TIMEOUT after its presence timeout', async () => {
    const alice = await remote('alice')
    const ch = uniq('vanish')
    await alice.subscribe(ch)
    const ghostId = uniq('ghost')
    const joined = waitFor(alice, 'presence', isPresence('REMOTE_JOIN', ch, ghostId))
    const ghost = await startGhost(server.endpoint, ghostId, ch)
    await joined
    assert.deepEqual(ids((await alice.presence.whoNow(ch, 'MESSAGE')).occupants), [alice.userId, ghostId].sort())
    const timedOut = waitFor(alice, 'presence', isPresence('REMOTE_TIMEOUT', ch, ghostId))
    await ghost.kill()
    const ev = await timedOut
    assert.equal(ev.channelType, 'MESSAGE')
    assert.deepEqual(ids((await alice.presence.whoNow(ch, 'MESSAGE')).occupants), [alice.userId])
  })

  test('a frozen server: 13012 with timeoutMs, AbortSignal', async () => {
    const a = await remote('slow')
    const ch = uniq('frozen')
    await a.subscribe(ch)
    await frozen(server, async () => {
      const e = await rejectsWithCode(assert, a.presence.whoNow(ch, 'MESSAGE', { timeoutMs: 200 }), ErrorCode.PRESENCE_OPERATION_TIMEOUT, 'get_online_users')
      assert.ok(e instanceof RTMTimeoutError)
      await rejectsWithCode(assert, a.presence.setState(ch, 'MESSAGE', { k: 'v' }, { timeoutMs: 200 }), ErrorCode.PRESENCE_OPERATION_TIMEOUT, 'set_state')
      await rejectsWithCode(assert, a.presence.whereNow('', { timeoutMs: 200 }), ErrorCode.PRESENCE_OPERATION_TIMEOUT)
      const reason = new Error('gave up')
      const ac = new AbortController()
      const p = a.presence.getState(a.userId, ch, 'MESSAGE', { signal: ac.signal })
      ac.abort(reason)
      await assert.rejects(within(p), (x) => x === reason)
    })
    assert.equal((await a.presence.whoNow(ch, 'MESSAGE')).totalOccupancy, 1)
  })
})

test.describe('INTERVAL mode: rtm2 serve --presence-announce-max 2 --presence-interval-ms 300', () => {
  let server
  test.before(async () => {
    server = await startServer(['--presence-announce-max', '2', '--presence-interval-ms', '300', '--ttl-unit-ms', '100'])
  })
  test.after(async () => {
    await closeAll()
    await server?.stop()
  })
  const remote = (prefix) => loggedIn(prefix, { endpoint: server.endpoint })
  const interval = (c, ch, pred) => waitFor(c, 'presence', (e) => isPresence('INTERVAL', ch)(e) && pred(e.interval))

  test('above the threshold, joins, state changes, leaves and timeouts are aggregated', async () => {
    const ch = uniq('crowd')
    const [a, b, c, d] = [await remote('a'), await remote('b'), await remote('c'), await remote('d')]
    await a.subscribe(ch)
    const bJoin = waitFor(a, 'presence', isPresence('REMOTE_JOIN', ch, b.userId))
    await b.subscribe(ch)
    await bJoin

    // A third user: above the threshold (2), so one INTERVAL event per interval.
    let ev = interval(a, ch, (i) => i.join.users.includes(c.userId))
    await c.subscribe(ch)
    let e = await ev
    assert.equal(e.publisher, '')
    assert.deepEqual(e.snapshot, [])
    assert.deepEqual(e.stateChanged, {})
    assert.deepEqual(e.interval, {
      join: { users: [c.userId], userCount: 1 },
      leave: { users: [], userCount: 0 },
      timeout: { users: [], userCount: 0 },
      userStateList: [],
      totalOccupancy: 3,
    })

    ev = interval(a, ch, (i) => i.userStateList.length > 0)
    await c.presence.setState(ch, 'MESSAGE', { k: 'v', x: 'y' })
    e = await ev
    assert.deepEqual(e.interval.userStateList, [{ userId: c.userId, states: { k: 'v', x: 'y' }, statesCount: 2 }])
    assert.equal(e.interval.totalOccupancy, 3)

    ev = interval(b, ch, (i) => i.join.users.includes(d.userId))
    await d.subscribe(ch)
    assert.equal((await ev).interval.totalOccupancy, 4)

    const ghostId = uniq('ghost')
    ev = interval(a, ch, (i) => i.join.users.includes(ghostId))
    const ghost = await startGhost(server.endpoint, ghostId, ch)
    assert.equal((await ev).interval.totalOccupancy, 5)
    ev = interval(a, ch, (i) => i.timeout.users.includes(ghostId))
    await ghost.kill()
    e = await ev
    assert.deepEqual(e.interval.timeout, { users: [ghostId], userCount: 1 })
    assert.equal(e.interval.totalOccupancy, 4)

    ev = interval(a, ch, (i) => i.leave.users.includes(b.userId))
    await b.unsubscribe(ch)
    e = await ev
    assert.deepEqual(e.interval.leave, { users: [b.userId], userCount: 1 })
    assert.equal(e.interval.totalOccupancy, 3)

    // Back at the threshold: per-user events again.
    const leave = waitFor(a, 'presence', isPresence('REMOTE_LEAVE', ch, c.userId))
    await c.unsubscribe(ch)
    await leave
  })
})
