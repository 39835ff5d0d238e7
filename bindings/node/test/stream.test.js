'use strict'
// Stream channels and topics on the embedded default: the quick start and the limits.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMStreamChannel, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, waitFor, collect, rejectsWithCode } = require('./helpers')

test.afterEach(closeAll)

function client(prefix) {
  return track(new RTM(APP_ID, uniq(prefix)))
}

const isTopic = (type, channel) => (t) => t.eventType === type && t.channelName === channel

test('stream channel quick start: join, topics, subscribe, publish, receive, leave', async () => {
  const alice = client('alice')
  const bob = client('bob')
  await alice.login()
  await bob.login()
  const name = uniq('stage')
  const aStage = alice.createStreamChannel(name)
  const bStage = bob.createStreamChannel(name)
  assert.ok(aStage instanceof RTMStreamChannel)
  assert.equal(aStage.channelName, name)
  assert.equal(aStage.isJoined(), false)

  // Alice joins (stream link state CONNECTED, topic SNAPSHOT) and becomes a publisher.
  const aLink = waitFor(alice, 'linkState', (s) => s.serviceType === 'STREAM' && s.channelName === name)
  const aSnap = waitFor(alice, 'topic', isTopic('SNAPSHOT', name))
  const joined = await aStage.join()
  assert.deepEqual(joined, { channelName: name, topicInfos: [], timestamp: joined.timestamp })
  assert.ok(joined.timestamp > 0, 'the server time of the answer')
  const link = await aLink
  assert.equal(link.currentState, 'CONNECTED')
  assert.equal(link.reasonCode, 'JOIN_SUCCESS')
  assert.deepEqual(link.affectedChannels, [name])
  assert.equal((await aSnap).totalTopics, 0)
  assert.equal(aStage.isJoined(), true)
  await aStage.joinTopic('slides', { meta: 'presenter', qos: 'ORDERED', priority: 'HIGH' })
  assert.deepEqual(aStage.joinedTopics(), ['slides'])

  // Bob joins: the snapshot lists Alice's topic.
  const bSnap = waitFor(bob, 'topic', isTopic('SNAPSHOT', name))
  const bJoined = await bStage.join({ withPresence: true })
  assert.deepEqual(bJoined.topicInfos, [
    { topicName: 'slides', publishers: [{ publisherUserId: alice.userId, publisherMeta: 'presenter' }], totalPublisher: 1 },
  ])
  const snap = await bSnap
  assert.equal(snap.totalTopics, 1)
  assert.equal(snap.publisher, '')

  // Bob becomes a publisher too: Alice sees REMOTE_JOIN with the meta.
  const remoteJoin = waitFor(alice, 'topic', isTopic('REMOTE_JOIN', name))
  await bStage.joinTopic('chat', { meta: 'm-b' })
  const rj = await remoteJoin
  assert.equal(rj.publisher, bob.userId)
  assert.equal(rj.topicInfos[0].topicName, 'chat')
  assert.equal(rj.topicInfos[0].publishers[0].publisherMeta, 'm-b')
  assert.ok(rj.timestamp > 0)

  // Bob subscribes to every publisher of "slides".
  const sub = await bStage.subscribeTopic('slides')
  assert.deepEqual(sub, {
    timestamp: sub.timestamp,
    channelName: name,
    topicName: 'slides',
    succeedUsers: [alice.userId],
    failedUsers: [],
    failedDetails: [],
  })
  assert.ok(sub.timestamp >= bJoined.timestamp)
  const listed = bStage.getSubscribedUserList('slides')
  assert.ok(!(listed instanceof Promise), 'getSubscribedUserList is synchronous')
  assert.deepEqual(listed, {
    channelName: name,
    topicName: 'slides',
    subscribed: [alice.userId],
    users: [alice.userId],
    totalUser: 1,
  })

  // Alice publishes; Bob receives the topic messages (string and binary), in order.
  const got = collect(bob, 'message', 3, (m) => m.channelType === 'STREAM')
  await aStage.publishTopicMessage('slides', 'slide 1', { customType: 'page' })
  await aStage.publishTopicMessage('slides', new Uint8Array([9, 8]))
  await aStage.publishTopicMessage('slides', 'slide 2')
  const [m1, m2, m3] = await got
  assert.deepEqual(
    { ...m1, timestamp: 0 },
    {
      channelType: 'STREAM',
      channelName: name,
      topicName: 'slides',
      messageType: 'STRING',
      message: 'slide 1',
      customType: 'page',
      publisher: alice.userId,
      timestamp: 0,
      recovered: false,
    },
  )
  assert.equal(m2.messageType, 'BINARY')
  assert.deepEqual([...m2.message], [9, 8])
  assert.equal(m3.message, 'slide 2')

  // The messages() iterator filters by the stream channel name.
  const it = bob.messages({ channel: name })
  await aStage.publishTopicMessage('slides', 'slide 3')
  const next = await it.next()
  assert.equal(next.value.topicName, 'slides')
  assert.equal(next.value.message, 'slide 3')
  await it.return()

  // Unsubscribe: nobody is subscribed in the topic any more (an empty list); unsubscribing again is 11013.
  await bStage.unsubscribeTopic('slides')
  assert.deepEqual(bStage.getSubscribedUserList('slides').users, [])
  assert.equal(bStage.getSubscribedUserList('slides').totalUser, 0)
  await rejectsWithCode(assert, bStage.unsubscribeTopic('slides'), ErrorCode.CHANNEL_TOPIC_NOT_SUBSCRIBED, 'unsubscribe_topic')

  // Alice leaves the topic: Bob sees REMOTE_LEAVE.
  const remoteLeave = waitFor(bob, 'topic', isTopic('REMOTE_LEAVE', name))
  await aStage.leaveTopic('slides')
  const rl = await remoteLeave
  assert.equal(rl.publisher, alice.userId)
  assert.equal(rl.topicInfos[0].topicName, 'slides')
  await rejectsWithCode(assert, aStage.leaveTopic('slides'), ErrorCode.CHANNEL_TOPIC_NOT_JOINED, 'leave_topic')
  await rejectsWithCode(assert, aStage.publishTopicMessage('slides', 'x'), ErrorCode.CHANNEL_TOPIC_NOT_JOINED)

  // Bob leaves the channel: his topic role ends (REMOTE_LEAVE for "chat").
  const chatLeave = waitFor(alice, 'topic', (t) => isTopic('REMOTE_LEAVE', name)(t) && t.publisher === bob.userId)
  const bLeft = waitFor(bob, 'linkState', (s) => s.serviceType === 'STREAM' && s.currentState === 'IDLE')
  await bStage.leave()
  assert.equal((await chatLeave).topicInfos[0].topicName, 'chat')
  assert.equal((await bLeft).reasonCode, 'LEAVE')
  assert.equal(bStage.isJoined(), false)
  await rejectsWithCode(assert, bStage.leave(), ErrorCode.CHANNEL_NOT_JOINED, 'leave')
  await rejectsWithCode(assert, bStage.joinTopic('t'), ErrorCode.CHANNEL_NOT_JOINED)
  await aStage.leave()
  await alice.logout()
  await bob.logout()
})

test('topic limits and errors carry exact codes', async () => {
  const a = client('lim')
  const sc = a.createStreamChannel(uniq('limits'))
  // Before login: 10002.
  await rejectsWithCode(assert, sc.join(), ErrorCode.NOT_LOGIN, 'join')
  await a.login()
  await sc.join()
  await rejectsWithCode(assert, sc.join(), ErrorCode.DUPLICATE_OPERATION)
  // 8 joined topics are fine, the 9th is 11014.
  for (let i = 0; i < 8; i++) await sc.joinTopic(`t${i}`)
  await rejectsWithCode(assert, sc.joinTopic('t8'), ErrorCode.CHANNEL_EXCEED_TOPIC_LIMITATION, 'join_topic')
  assert.equal(ErrorCode.CHANNEL_EXCEED_TOPIC_LIMITATION, 11014)
  await rejectsWithCode(assert, sc.joinTopic('t0'), ErrorCode.CHANNEL_JOIN_TOPIC_FAILED)
  await rejectsWithCode(assert, sc.joinTopic('x'.repeat(17)), ErrorCode.CHANNEL_INVALID_TOPIC_NAME)
  await rejectsWithCode(assert, sc.joinTopic('m', { meta: 'm'.repeat(257) }), ErrorCode.CHANNEL_INVALID_TOPIC_META)
  await rejectsWithCode(assert, sc.joinTopic('q', { qos: 'SOMETIMES' }), ErrorCode.INVALID_PARAMETER)
  await rejectsWithCode(assert, sc.joinTopic('q', { priority: 'URGENT' }), ErrorCode.INVALID_PARAMETER)
  // Topic messages: payload + customType at most 1 KiB; customType at most 32 bytes.
  await sc.publishTopicMessage('t0', new Uint8Array(1024))
  await rejectsWithCode(
    assert,
    sc.publishTopicMessage('t0', new Uint8Array(1024), { customType: 'x' }),
    ErrorCode.CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION,
  )
  await rejectsWithCode(assert, sc.publishTopicMessage('t0', 'x', { customType: 'c'.repeat(33) }), 11029)
  await rejectsWithCode(assert, sc.subscribeTopic('nobody-here'), ErrorCode.CHANNEL_TOPIC_NOT_EXIST)
  // 64 publishers per topic: the 65th fails per user (20003).
  const users = Array.from({ length: 65 }, (_, i) => `u${i}`)
  const r = await sc.subscribeTopic('big', { users })
  assert.equal(r.succeedUsers.length, 64)
  assert.deepEqual(r.failedUsers, ['u64'])
  assert.deepEqual(
    r.failedDetails.map((f) => [f.user, f.errorCode]),
    [['u64', 20003]],
  )
  await rejectsWithCode(assert, sc.subscribeTopic('big', { users: ['u99'] }), ErrorCode.CHANNEL_EXCEED_TOPIC_USER_LIMITATION)
  // A list longer than a stream channel can hold (128) is refused whole (as in C).
  const users129 = Array.from({ length: 129 }, (_, i) => `u${i}`)
  await rejectsWithCode(assert, sc.subscribeTopic('other', { users: users129 }), ErrorCode.CHANNEL_INVALID_USER_LIST)
  await rejectsWithCode(assert, sc.unsubscribeTopic('big', { users: users129 }), ErrorCode.CHANNEL_INVALID_USER_LIST)
  const r2 = await sc.subscribeTopic('other', { users: ['a', '_bad'] })
  assert.deepEqual(r2.succeedUsers, ['a'])
  assert.deepEqual(r2.failedUsers, ['_bad'])
  assert.equal(r2.failedDetails[0].errorCode, 6)
  await sc.subscribeTopic('other', { users: ['b'] })
  await sc.unsubscribeTopic('other', { users: ['a'] })
  assert.deepEqual(sc.getSubscribedUserList('other').users, ['b'])

  // Invalid names: 10008 (channel) synchronously, 11008 (topic) asynchronously.
  assert.throws(() => a.createStreamChannel('_x'), (e) => e.code === ErrorCode.INVALID_CHANNEL_NAME)
  await rejectsWithCode(assert, sc.leaveTopic(''), ErrorCode.CHANNEL_INVALID_TOPIC_NAME)

  // asyncDispose leaves the channel.
  await sc[Symbol.asyncDispose]()
  assert.equal(sc.isJoined(), false)
  await a.logout()
})

test('stream-channel token renewal and RTM.renewToken({ channelName })', async () => {
  const a = client('renew')
  await a.login()
  const name = uniq('r')
  const sc = a.createStreamChannel(name)
  await rejectsWithCode(assert, sc.renewToken('t'), ErrorCode.CHANNEL_NOT_JOINED, 'renew_token')
  await sc.join({ token: '' })
  // Development mode: any token is accepted for renewal.
  await sc.renewToken('')
  await a.renewToken('', { channelName: name })
  await a.renewToken('')
  await a.logout()
})
