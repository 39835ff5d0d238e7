'use strict'
// What calls resolve with, against `rtm2 serve`: agora-rtm-sdk 2.3's response shapes, with
// `timestamp` the server's time of the answer, for calls that answer nothing else and for those
// that return data alike (the server runs on this machine, so its clock is ours: a server time
// lies between a time taken before the call and one taken after it); the ErrorInfo fields of a
// rejection; and the `token` event (agora-rtm-sdk's TokenEvent) beside
// `tokenPrivilegeWillExpire`.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMError, RTMSubscription, ErrorCode, buildToken, buildStreamToken } = require('rtm2')
const { APP_ID, CERT, uniq, track, closeAll, startServer, startCertServer, waitFor, within } = require('./helpers')

let server
let certServer

test.before(async () => {
  ;[server, certServer] = await Promise.all([startServer(), startCertServer()])
})

test.after(async () => {
  await closeAll()
  await Promise.all([server?.stop(), certServer?.stop()])
})

test.afterEach(closeAll)

function client(name, endpoint = server.endpoint) {
  return track(new RTM(APP_ID, uniq(name), { endpoint }))
}

/**
 * Runs `call()` and asserts that its result has a `timestamp` taken by the server while the
 * call ran; resolves with the result.
 */
async function timed(call, what) {
  const before = Date.now()
  const r = await within(call(), undefined, what)
  const after = Date.now()
  assert.equal(typeof r.timestamp, 'number', `${what}: timestamp is a number`)
  assert.ok(Number.isInteger(r.timestamp), `${what}: timestamp is whole ms (${r.timestamp})`)
  assert.ok(before <= r.timestamp && r.timestamp <= after, `${what}: ${before} <= ${r.timestamp} <= ${after}`)
  return r
}

test('login, subscribe, publish, unsubscribe, renewToken, logout: agora-rtm-sdk responses with the server time', async () => {
  const alice = client('alice')
  const bob = client('bob')
  assert.deepEqual(Object.keys(await timed(() => alice.login(), 'login')), ['timestamp'])
  await bob.login()

  // subscribe: the subscription is iterable and is agora-rtm-sdk's SubscribeResponse.
  const ch = uniq('room')
  const sub = await timed(() => alice.subscribe(ch, { withPresence: false }), 'subscribe')
  assert.ok(sub instanceof RTMSubscription)
  const { channelName, timestamp } = sub
  assert.equal(channelName, ch)
  assert.equal(typeof timestamp, 'number')

  // publish: { timestamp, channelName } — a message channel, a user, with an AbortSignal.
  const p = await timed(() => alice.publish(ch, 'hello'), 'publish')
  assert.deepEqual(p, { timestamp: p.timestamp, channelName: ch })
  assert.ok(p.timestamp >= sub.timestamp)
  const toBob = await timed(() => alice.publish(bob.userId, 'hi', { channelType: 'USER' }), 'publish to a user')
  assert.deepEqual(toBob, { timestamp: toBob.timestamp, channelName: bob.userId })
  const signal = new AbortController().signal
  const withSignal = await timed(() => alice.publish(ch, 'again', { signal, timeoutMs: 5000 }), 'publish with a signal')
  assert.deepEqual(withSignal, { timestamp: withSignal.timestamp, channelName: ch })
  // Unawaited publishes each resolve with their own object.
  const many = await within(Promise.all(Array.from({ length: 50 }, (_, i) => alice.publish(ch, String(i)))))
  assert.equal(new Set(many).size, 50)
  for (const r of many) assert.deepEqual(r, { timestamp: r.timestamp, channelName: ch })

  // renewToken (the login token): { timestamp }.
  const renewed = await timed(() => alice.renewToken(''), 'renewToken')
  assert.deepEqual(renewed, { timestamp: renewed.timestamp })

  // unsubscribe: { timestamp, channelName }, also through the subscription.
  const u = await timed(() => alice.unsubscribe(ch), 'unsubscribe')
  assert.deepEqual(u, { timestamp: u.timestamp, channelName: ch })
  const ch2 = uniq('room')
  const sub2 = await alice.subscribe(ch2)
  const u2 = await timed(() => sub2.unsubscribe(), 'RTMSubscription.unsubscribe')
  assert.deepEqual(u2, { timestamp: u2.timestamp, channelName: ch2 })

  // logout: { timestamp } — the server's; logged out already, this machine's.
  const out = await timed(() => alice.logout(), 'logout')
  assert.deepEqual(out, { timestamp: out.timestamp })
  const again = await timed(() => alice.logout(), 'logout when logged out')
  assert.deepEqual(again, { timestamp: again.timestamp })
  await alice.close()
  const closed = await timed(() => alice.logout(), 'logout of a closed client')
  assert.deepEqual(closed, { timestamp: closed.timestamp })
})

test('stream channel: join, topics, subscribeTopic with a failed user, renewToken, leave', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await Promise.all([alice.login(), bob.login()])
  const name = uniq('stage')
  const aStage = alice.createStreamChannel(name)
  const bStage = bob.createStreamChannel(name)

  const joined = await timed(() => aStage.join(), 'join')
  assert.deepEqual(joined, { channelName: name, topicInfos: [], timestamp: joined.timestamp })
  const topic = { channelName: name, topicName: 'slides' }
  const jt = await timed(() => aStage.joinTopic('slides', { meta: 'm' }), 'joinTopic')
  assert.deepEqual(jt, { timestamp: jt.timestamp, ...topic })
  const bJoined = await timed(() => bStage.join(), 'join (bob)')
  assert.deepEqual(bJoined.topicInfos.map((t) => t.topicName), ['slides'])

  // One publisher subscribed, one invalid user id refused: failedUsers are ids, the reasons in
  // failedDetails.
  const st = await timed(() => bStage.subscribeTopic('slides', { users: [alice.userId, '_bad'] }), 'subscribeTopic')
  assert.deepEqual(st, {
    timestamp: st.timestamp,
    ...topic,
    succeedUsers: [alice.userId],
    failedUsers: ['_bad'],
    failedDetails: [{ user: '_bad', errorCode: 6, reason: st.failedDetails[0]?.reason }],
  })
  assert.equal(typeof st.failedDetails[0].reason, 'string')
  assert.ok(st.failedDetails[0].reason.length > 0)

  // Synchronous: agora-rtm-sdk's `subscribed`, rtm2's `users` and `totalUser`; no server answer.
  assert.deepEqual(bStage.getSubscribedUserList('slides'), {
    ...topic,
    subscribed: [alice.userId],
    users: [alice.userId],
    totalUser: 1,
  })

  const got = waitFor(bob, 'message', (m) => m.channelType === 'STREAM' && m.channelName === name)
  const pt = await timed(() => aStage.publishTopicMessage('slides', 'page 1'), 'publishTopicMessage')
  assert.deepEqual(pt, { timestamp: pt.timestamp, ...topic })
  assert.equal((await got).message, 'page 1')
  const withSignal = await timed(
    () => aStage.publishTopicMessage('slides', 'page 2', { signal: new AbortController().signal }),
    'publishTopicMessage with a signal',
  )
  assert.deepEqual(withSignal, { timestamp: withSignal.timestamp, ...topic })

  const ut = await timed(() => bStage.unsubscribeTopic('slides'), 'unsubscribeTopic')
  assert.deepEqual(ut, { timestamp: ut.timestamp, ...topic })
  const lt = await timed(() => aStage.leaveTopic('slides'), 'leaveTopic')
  assert.deepEqual(lt, { timestamp: lt.timestamp, ...topic })

  // A stream channel's token, either way: { timestamp, channelName }.
  const r1 = await timed(() => aStage.renewToken(''), 'RTMStreamChannel.renewToken')
  assert.deepEqual(r1, { timestamp: r1.timestamp, channelName: name })
  const r2 = await timed(() => alice.renewToken('', { channelName: name }), 'renewToken({ channelName })')
  assert.deepEqual(r2, { timestamp: r2.timestamp, channelName: name })

  const left = await timed(() => aStage.leave(), 'leave')
  assert.deepEqual(left, { timestamp: left.timestamp, channelName: name })
})

test('presence, lock and storage calls that answer nothing else carry the server time', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await Promise.all([alice.login(), bob.login()])
  const ch = uniq('room')
  const scope = { channelName: ch, channelType: 'MESSAGE' }

  // setState before subscribing is kept by the client: its answer carries this machine's time.
  const kept = await timed(() => alice.presence.setState(ch, 'MESSAGE', { mood: 'calm' }), 'setState (kept)')
  assert.deepEqual(kept, { ...scope, timestamp: kept.timestamp })
  await alice.subscribe(ch)
  const set = await timed(() => alice.presence.setState(ch, 'MESSAGE', { mood: 'happy' }), 'setState')
  assert.deepEqual(set, { ...scope, timestamp: set.timestamp })
  const removed = await timed(() => alice.presence.removeState(ch, 'MESSAGE', { states: ['mood'] }), 'removeState')
  assert.deepEqual(removed, { ...scope, timestamp: removed.timestamp })

  const lock = { ...scope, lockName: 'door' }
  const sl = await timed(() => alice.lock.setLock(ch, 'MESSAGE', 'door'), 'setLock')
  assert.deepEqual(sl, { ...lock, timestamp: sl.timestamp })
  const acquired = await timed(() => alice.lock.acquireLock(ch, 'MESSAGE', 'door'), 'acquireLock')
  assert.deepEqual(acquired, { ...lock, fencingToken: acquired.fencingToken, timestamp: acquired.timestamp })
  const rl = await timed(() => alice.lock.releaseLock(ch, 'MESSAGE', 'door'), 'releaseLock')
  assert.deepEqual(rl, { ...lock, timestamp: rl.timestamp })
  await bob.lock.acquireLock(ch, 'MESSAGE', 'door')
  const rv = await timed(() => alice.lock.revokeLock(ch, 'MESSAGE', 'door', bob.userId), 'revokeLock')
  assert.deepEqual(rv, { ...lock, timestamp: rv.timestamp })
  const rm = await timed(() => alice.lock.removeLock(ch, 'MESSAGE', 'door'), 'removeLock')
  assert.deepEqual(rm, { ...lock, timestamp: rm.timestamp })

  const sum = await timed(() => bob.storage.subscribeUserMetadata(alice.userId), 'subscribeUserMetadata')
  assert.deepEqual(sum, { userId: alice.userId, timestamp: sum.timestamp })
  const uum = await timed(() => bob.storage.unsubscribeUserMetadata(alice.userId), 'unsubscribeUserMetadata')
  assert.deepEqual(uum, { userId: alice.userId, timestamp: uum.timestamp })
})

test('calls that return data carry the server time too: presence queries', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await Promise.all([alice.login(), bob.login()])
  const ch = uniq('room')
  const scope = { channelName: ch, channelType: 'MESSAGE' }
  await alice.presence.setState(ch, 'MESSAGE', { mood: 'happy' })
  await alice.subscribe(ch)

  const online = await timed(() => bob.presence.getOnlineUsers(ch, 'MESSAGE', { includedState: true }), 'getOnlineUsers')
  assert.deepEqual(online, {
    ...scope,
    totalOccupancy: 1,
    occupants: [{ userId: alice.userId, states: { mood: 'happy' }, statesCount: 1 }],
    nextPage: '',
    timestamp: online.timestamp,
  })
  // The channel type defaults to MESSAGE; whoNow is the same call; a signal takes the other path.
  const who = await timed(() => bob.presence.whoNow(ch, undefined, { signal: new AbortController().signal }), 'whoNow')
  assert.deepEqual(who, { ...online, occupants: [{ userId: alice.userId, states: {}, statesCount: 0 }], timestamp: who.timestamp })
  const count = await timed(() => bob.presence.getOnlineUsers(ch, 'MESSAGE', { includedUserId: false }), 'getOnlineUsers (count)')
  assert.deepEqual(count, { ...scope, totalOccupancy: 1, occupants: [], nextPage: '', timestamp: count.timestamp })

  const where = await timed(() => bob.presence.getUserChannels(alice.userId), 'getUserChannels')
  assert.deepEqual(where, { channels: [scope], totalChannel: 1, timestamp: where.timestamp })
  const own = await timed(() => alice.presence.whereNow('', { timeoutMs: 5000 }), 'whereNow')
  assert.deepEqual(own, { channels: [scope], totalChannel: 1, timestamp: own.timestamp })
  const none = await timed(() => bob.presence.whereNow(bob.userId), 'whereNow (nowhere)')
  assert.deepEqual(none, { channels: [], totalChannel: 0, timestamp: none.timestamp })

  const st = await timed(() => bob.presence.getState(alice.userId, ch, 'MESSAGE'), 'getState')
  assert.deepEqual(st, { ...scope, userId: alice.userId, states: { mood: 'happy' }, statesCount: 1, timestamp: st.timestamp })
  const signal = new AbortController().signal
  const st2 = await timed(() => bob.presence.getState(alice.userId, ch, undefined, { signal }), 'getState with a signal')
  assert.deepEqual(st2, { ...st, timestamp: st2.timestamp })
})

test('calls that return data carry the server time too: metadata writes and reads', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await Promise.all([alice.login(), bob.login()])
  const ch = uniq('room')
  const scope = { channelName: ch, channelType: 'MESSAGE' }

  // Channel metadata: each write's answer is { channelName, channelType, totalCount, majorRevision, timestamp }.
  const items = [
    { key: 'k', value: 'v' },
    { key: 'j', value: 'w' },
  ]
  const set = await timed(() => alice.storage.setChannelMetadata(ch, 'MESSAGE', items), 'setChannelMetadata')
  assert.deepEqual(set, { ...scope, totalCount: 2, majorRevision: 1, timestamp: set.timestamp })
  const opts = { addTimeStamp: true, signal: new AbortController().signal }
  const upd = await timed(() => alice.storage.updateChannelMetadata(ch, undefined, [{ key: 'k', value: 'v2' }], opts), 'updateChannelMetadata')
  assert.deepEqual(upd, { ...scope, totalCount: 2, majorRevision: 2, timestamp: upd.timestamp })
  const got = await timed(() => bob.storage.getChannelMetadata(ch, 'MESSAGE'), 'getChannelMetadata')
  assert.deepEqual(got, {
    ...scope,
    totalCount: 2,
    majorRevision: 2,
    metadata: {
      j: { value: 'w', revision: 1, updated: 0, authorUid: '' },
      k: { value: 'v2', revision: 2, updated: got.metadata.k?.updated, authorUid: '' },
    },
    timestamp: got.timestamp,
  })
  // The item's `updated` is the time of the write, the answer's `timestamp` the time of the read.
  assert.ok(set.timestamp <= got.metadata.k.updated && got.metadata.k.updated <= got.timestamp, JSON.stringify(got))
  const rm = await timed(() => alice.storage.removeChannelMetadata(ch, 'MESSAGE', { data: [{ key: 'j' }] }), 'removeChannelMetadata')
  assert.deepEqual(rm, { ...scope, totalCount: 1, majorRevision: 3, timestamp: rm.timestamp })
  const rmAll = await timed(() => alice.storage.removeChannelMetadata(ch), 'removeChannelMetadata (all)')
  assert.deepEqual(rmAll, { ...scope, totalCount: 0, majorRevision: 4, timestamp: rmAll.timestamp })
  const unwritten = uniq('never')
  const signal = new AbortController().signal
  const never = await timed(() => bob.storage.getChannelMetadata(unwritten, 'STREAM', { signal }), 'getChannelMetadata (never written)')
  assert.deepEqual(never, { channelName: unwritten, channelType: 'STREAM', totalCount: 0, majorRevision: 0, metadata: {}, timestamp: never.timestamp })

  // User metadata: { userId, totalCount, majorRevision, timestamp }; no userId: this client.
  const mine = { userId: alice.userId }
  const us = await timed(() => alice.storage.setUserMetadata([{ key: 'status', value: 'online' }]), 'setUserMetadata')
  assert.deepEqual(us, { ...mine, totalCount: 1, majorRevision: 1, timestamp: us.timestamp })
  const uu = await timed(
    () => bob.storage.updateUserMetadata([{ key: 'status', value: 'away' }], { userId: alice.userId }),
    'updateUserMetadata',
  )
  assert.deepEqual(uu, { ...mine, totalCount: 1, majorRevision: 2, timestamp: uu.timestamp })
  const ug = await timed(() => bob.storage.getUserMetadata({ userId: alice.userId }), 'getUserMetadata')
  assert.deepEqual(ug, {
    ...mine,
    totalCount: 1,
    majorRevision: 2,
    metadata: { status: { value: 'away', revision: 2, updated: 0, authorUid: '' } },
    timestamp: ug.timestamp,
  })
  const own = await timed(() => alice.storage.getUserMetadata({ signal }), 'getUserMetadata (own)')
  assert.deepEqual(own, { ...ug, timestamp: own.timestamp })
  const ur = await timed(() => alice.storage.removeUserMetadata(), 'removeUserMetadata')
  assert.deepEqual(ur, { ...mine, totalCount: 0, majorRevision: 3, timestamp: ur.timestamp })
})

test('calls that return data carry the server time too: locks (the grant time) and history', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await Promise.all([alice.login(), bob.login()])
  const ch = uniq('room')
  const scope = { channelName: ch, channelType: 'MESSAGE' }
  const lock = { ...scope, lockName: 'door' }
  await alice.lock.setLock(ch, 'MESSAGE', 'door', { ttl: 30 })

  const free = uniq('free')
  const empty = await timed(() => bob.lock.getLock(free, 'STREAM'), 'getLock (no locks)')
  assert.deepEqual(empty, { channelName: free, channelType: 'STREAM', totalLocks: 0, lockDetails: [], timestamp: empty.timestamp })
  const a = await timed(() => alice.lock.acquireLock(ch, 'MESSAGE', 'door', { signal: new AbortController().signal }), 'acquireLock with a signal')
  assert.deepEqual(a, { ...lock, fencingToken: a.fencingToken, timestamp: a.timestamp })
  assert.ok(Number.isInteger(a.fencingToken) && a.fencingToken > 0, String(a.fencingToken))
  const locks = await timed(() => bob.lock.getLock(ch, 'MESSAGE'), 'getLock')
  assert.deepEqual(locks, {
    ...scope,
    totalLocks: 1,
    lockDetails: [{ lockName: 'door', owner: alice.userId, ttl: 30, fencingToken: a.fencingToken }],
    timestamp: locks.timestamp,
  })
  const locks2 = await timed(() => bob.lock.getLocks(ch, undefined, { signal: new AbortController().signal }), 'getLocks')
  assert.deepEqual(locks2, { ...locks, timestamp: locks2.timestamp })

  // A queued acquisition answers with the time it was granted, not the time it was asked.
  const asked = Date.now()
  const waiting = bob.lock.acquireLock(ch, 'MESSAGE', 'door', { retry: true })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const released = Date.now()
  await alice.lock.releaseLock(ch, 'MESSAGE', 'door')
  const granted = await within(waiting, undefined, 'the queued acquisition')
  const after = Date.now()
  assert.deepEqual(granted, { ...lock, fencingToken: granted.fencingToken, timestamp: granted.timestamp })
  assert.ok(granted.fencingToken > a.fencingToken)
  assert.ok(asked + 100 <= released && released <= granted.timestamp && granted.timestamp <= after, `${released} <= ${granted.timestamp} <= ${after}`)

  // history.getMessages: { messageList, count, newStart, timestamp }; `timestamp` is the read's
  // time, each message keeps its own.
  const p = await alice.publish(ch, 'kept', { storeInHistory: true })
  const page = await timed(() => bob.history.getMessages(ch, 'MESSAGE'), 'getMessages')
  assert.deepEqual(page, {
    messageList: [
      { message: 'kept', messageType: 'STRING', customType: '', publisher: alice.userId, timestamp: page.messageList[0]?.timestamp },
    ],
    count: 1,
    newStart: 0,
    timestamp: page.timestamp,
  })
  assert.ok(page.messageList[0].timestamp <= page.timestamp && p.timestamp <= page.timestamp)
  const none = await timed(() => bob.history.getMessages(uniq('empty'), undefined, { signal: new AbortController().signal }), 'getMessages (empty)')
  assert.deepEqual(none, { messageList: [], count: 0, newStart: 0, timestamp: none.timestamp })
  await alice.publish(bob.userId, 'for bob', { channelType: 'USER', storeInHistory: true })
  const inbox = await timed(() => bob.history.getMessages(bob.userId, 'USER', { messageCount: 10 }), 'getMessages (USER)')
  assert.equal(inbox.count, 1)
  assert.equal(inbox.messageList[0].message, 'for bob')
})

test('a rejection carries agora-rtm-sdk ErrorInfo fields: error, errorCode, reason, operation', async () => {
  const alice = client('alice')
  await alice.login()
  const ch = uniq('never')
  let error
  await assert.rejects(within(alice.unsubscribe(ch)), (e) => {
    error = e
    return true
  })
  assert.ok(error instanceof RTMError)
  assert.equal(error.error, true)
  assert.equal(error.errorCode, ErrorCode.CHANNEL_NOT_SUBSCRIBED)
  assert.equal(typeof error.errorCode, 'number')
  assert.equal(error.code, error.errorCode)
  assert.equal(typeof error.reason, 'string')
  assert.ok(error.reason.includes(ch), error.reason)
  assert.equal(error.operation, 'unsubscribe')
  // A stream channel operation, and an error thrown synchronously, have them too.
  const sc = alice.createStreamChannel(uniq('stage'))
  await assert.rejects(within(sc.joinTopic('t')), (e) => e.error === true && e.errorCode === ErrorCode.CHANNEL_NOT_JOINED && e.operation === 'join_topic')
  assert.throws(
    () => alice.createStreamChannel('_bad'),
    (e) => e instanceof RTMError && e.error === true && e.errorCode === ErrorCode.INVALID_CHANNEL_NAME && e.reason.length > 0,
  )
})

test('token event: WILL_EXPIRE for the login token (subscribed channels) and for a stream channel token', async () => {
  // rtm2 serve --token-notice-secs 2: the notice comes 2 s before a token expires.
  const alice = client('alice', certServer.endpoint)
  const bob = client('bob', certServer.endpoint)
  const order = []
  alice.on('tokenPrivilegeWillExpire', (ch) => order.push(['tokenPrivilegeWillExpire', ch]))
  alice.on('token', (e) => order.push(['token', e.eventType]))
  const aliceNotice = waitFor(alice, 'token')
  const bobNotice = waitFor(bob, 'token')
  const before = Date.now()

  // Alice: a login token of 5 s; she subscribes to two channels before the notice.
  const [c1, c2] = [uniq('a'), uniq('b')]
  await alice.login({ token: buildToken(APP_ID, CERT, alice.userId, 5) })
  await alice.subscribe(c1)
  await alice.subscribe(c2)
  // Bob: a long login token, a stream channel token of 4 s.
  const stage = uniq('stage')
  await bob.login({ token: buildToken(APP_ID, CERT, bob.userId, 600) })
  await bob.createStreamChannel(stage).join({ token: buildStreamToken(APP_ID, CERT, stage, bob.userId, 4) })

  const a = await aliceNotice
  const aAt = Date.now()
  assert.deepEqual(a, {
    eventType: 'WILL_EXPIRE',
    reason: a.reason,
    affectedResources: { messageChannels: a.affectedResources.messageChannels, streamChannels: [] },
    timestamp: a.timestamp,
  })
  assert.deepEqual([...a.affectedResources.messageChannels].sort(), [c1, c2].sort())
  assert.match(a.reason, /login token/)
  assert.ok(before <= a.timestamp && a.timestamp <= aAt, `${before} <= ${a.timestamp} <= ${aAt}`)
  // Together with tokenPrivilegeWillExpire (''), which comes first.
  assert.deepEqual(order, [
    ['tokenPrivilegeWillExpire', ''],
    ['token', 'WILL_EXPIRE'],
  ])

  const b = await bobNotice
  const bAt = Date.now()
  assert.deepEqual(b, {
    eventType: 'WILL_EXPIRE',
    reason: b.reason,
    affectedResources: { messageChannels: [], streamChannels: [stage] },
    timestamp: b.timestamp,
  })
  assert.ok(b.reason.includes(stage), b.reason)
  assert.ok(before <= b.timestamp && b.timestamp <= bAt)

  // Renewing answers as agora-rtm-sdk's RenewTokenResponse.
  const r = await timed(() => alice.renewToken(buildToken(APP_ID, CERT, alice.userId, 600)), 'renewToken')
  assert.deepEqual(r, { timestamp: r.timestamp })
  const rs = await timed(
    () => bob.renewToken(buildStreamToken(APP_ID, CERT, stage, bob.userId, 600), { channelName: stage }),
    'renewToken({ channelName })',
  )
  assert.deepEqual(rs, { timestamp: rs.timestamp, channelName: stage })
})
