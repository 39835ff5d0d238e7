// Type-checked (tsc --noEmit) against lib/index.d.ts: ESM usage of the public API.
import {
  RTM,
  RTMError,
  RTMBaseError,
  RTMTimeoutError,
  ErrorCode,
  buildToken,
  buildStreamToken,
  setLogHandler,
  type ErrorCodeName,
  type LinkStateEvent,
  type MessageEvent,
  type RTMConfig,
  type TopicEvent,
  type PresenceEvent,
  type StorageEvent,
  type LockEvent,
  type MetadataItem,
  type LockEventType as LockEventName,
  LockEventType,
  PresenceEventType,
  StorageType,
  ChannelType,
  EncryptionMode,
  type EncryptionMode as EncryptionModeName,
  type MessageType,
  type HistoryMessage,
  RTMHistory,
} from 'rtm2'

const config: RTMConfig = { endpoint: 'tcp://127.0.0.1:9696', requestTimeoutMs: 5000, presenceTimeout: 30 }
const cluster: RTMConfig = { endpoint: ['tcp://10.0.0.1:9696', 'tcp://10.0.0.2:9696'] }
void cluster
const rtm = new RTM('970CA35de60c44645bbae8a215061b33', 'alice', config)

// End-to-end encryption: agora-rtm-sdk's names; the mode as a name, a constant or the number.
const mode: EncryptionModeName = EncryptionMode.AES_256_GCM
const encrypted: RTMConfig[] = [
  { encryptionMode: 'AES_128_GCM', cipherKey: 'secret', salt: new Uint8Array(32) },
  { encryptionMode: mode, cipherKey: 'secret', salt: Buffer.from('salt') },
  { encryptionMode: 2, cipherKey: 'secret', salt: 'salt' },
]
// @ts-expect-error: the salt is bytes or a string
const badSalt: RTMConfig = { encryptionMode: 'AES_128_GCM', cipherKey: 'secret', salt: 42 }
void encrypted
void badSalt
const undecryptable: number = rtm.undecryptableMessages
console.log(undecryptable)

rtm.addEventListener('message', (e: MessageEvent) => {
  const text: string = typeof e.message === 'string' ? e.message : new TextDecoder().decode(e.message)
  const kind: 'MESSAGE' | 'USER' | 'STREAM' | 'NONE' = e.channelType
  console.log(text, kind, e.publisher, e.customType, e.timestamp.toFixed())
  const recovered: boolean = e.recovered
  void recovered
})
rtm.on('linkState', (s: LinkStateEvent) => {
  if (s.currentState === 'FAILED' && s.reasonCode === 'SAME_UID_LOGIN') console.log(s.affectedChannels)
})
rtm.once('topic', (t: TopicEvent) => console.log(t.eventType, t.topicInfos[0]?.publishers[0]?.publisherUserId))
rtm.on('tokenPrivilegeWillExpire', (channelName: string) => console.log(channelName.length))
rtm.on('overflow', (o) => console.log(o.dropped, o.source))
// @ts-expect-error: not an event of RTM
rtm.on('no-such-event', () => {})
// @ts-expect-error: the listener's argument is a MessageEvent
rtm.addEventListener('message', (e: LinkStateEvent) => e)

async function main(): Promise<void> {
  const token: string = buildToken('970CA35de60c44645bbae8a215061b33', '5CFd2fd1755d40ecb72977518be15d3b', 'alice', 600)
  await rtm.login({ token, timeoutMs: 3000 })
  const ac = new AbortController()
  const sub = await rtm.subscribe('room', { withMessage: true, withPresence: false, signal: ac.signal })
  await rtm.publish('room', 'hello', { customType: 'text', timeoutMs: 1000 })
  await rtm.publish('bob', new Uint8Array([1, 2]), { channelType: 'USER' })
  // @ts-expect-error: publish takes MESSAGE or USER
  await rtm.publish('room', 'x', { channelType: 'PRIVATE' })
  for await (const m of sub) {
    console.log(m.channelName, m.messageType)
    break
  }
  for await (const m of rtm.messages({ channel: 'room', signal: AbortSignal.timeout(100) })) {
    console.log(m.topicName)
  }
  const sc = rtm.createStreamChannel('stage')
  const joined = await sc.join({ token: buildStreamToken('a', 'b', 'stage', 'alice', 60), withPresence: true })
  console.log(joined.topicInfos.length)
  await sc.joinTopic('slides', { qos: 'ORDERED', priority: 'HIGH', meta: 'presenter' })
  const r = await sc.subscribeTopic('slides', { users: ['bob'] })
  console.log(r.succeedUsers, r.failedUsers.map((f) => f.code))
  await sc.publishTopicMessage('slides', 'page 1', { customType: 'page' })
  const list = sc.getSubscribedUserList('slides')
  console.log(list.users, list.totalUser)
  await sc.unsubscribeTopic('slides', { users: [] })
  await sc.leaveTopic('slides')
  await sc.leave({ timeoutMs: 500 })
  try {
    await rtm.unsubscribe('room')
  } catch (e) {
    if (e instanceof RTMError) {
      const name: ErrorCodeName | 'UNKNOWN' = e.codeName
      const same: boolean = e.code === ErrorCode.CHANNEL_NOT_SUBSCRIBED && e.errorCode === e.code
      console.log(name, same, e.reason, e.operation, e instanceof RTMTimeoutError, e instanceof RTMBaseError)
    }
  }
  const n: 11033 = ErrorCode.CHANNEL_RECEIVER_OFFLINE
  console.log(n)
  setLogHandler('warn', (level, target, message) => console.log(level, target, message))
  setLogHandler('warn', null)
  rtm.setParameters({ request_timeout_ms: 2000 })
  console.log(rtm.getParameters(), rtm.linkState, rtm.userId)
  await rtm.logout()
  await rtm.close()
}

async function disposable(): Promise<void> {
  await using client = new RTM('970CA35de60c44645bbae8a215061b33', 'carol')
  await client.login()
}

async function services(): Promise<void> {
  rtm.on('presence', (e: PresenceEvent) => {
    if (e.eventType === PresenceEventType.SNAPSHOT) console.log(e.snapshot.map((u) => [u.userId, u.states, u.statesCount]))
    if (e.eventType === 'REMOTE_STATE_CHANGED') console.log(e.publisher, e.stateChanged['mood'])
    if (e.interval !== null) console.log(e.interval.join.users, e.interval.leave.userCount, e.interval.timeout.users, e.interval.userStateList, e.interval.totalOccupancy)
  })
  rtm.on('storage', (e: StorageEvent) => {
    const major: number = e.data.majorRevision
    if (e.storageType === StorageType.USER) console.log(e.channelName, major, e.data.metadata['k']?.authorUid, e.data.totalCount)
  })
  rtm.addEventListener('lock', (e: LockEvent) => {
    const t: LockEventName = e.eventType
    if (t === LockEventType.EXPIRED) console.log(e.lockName, e.owner, e.ttl, e.snapshot.map((d) => d.lockName))
  })
  // @ts-expect-error: a lock listener receives a LockEvent
  rtm.on('lock', (e: StorageEvent) => e)

  const ac = new AbortController()
  await rtm.presence.setState('room', ChannelType.MESSAGE, { mood: 'happy' })
  await rtm.presence.setState('room', 'STREAM', [['a', '1'], { key: 'b', value: '2' }], { timeoutMs: 500 })
  await rtm.presence.setState('room', undefined, new Map([['c', '3']]))
  const who = await rtm.presence.whoNow('room', 'MESSAGE', { includedUserId: true, includedState: true, page: '', signal: ac.signal })
  console.log(who.totalOccupancy, who.nextPage, who.occupants[0]?.states)
  const where = await rtm.presence.whereNow('')
  console.log(where.totalChannel, where.channels.map((c) => c.channelType))
  const st = await rtm.presence.getState('bob', 'room', 'MESSAGE')
  console.log(st.userId, st.statesCount, st.channelName)
  await rtm.presence.removeState('room', 'MESSAGE', { states: ['mood'] })
  await rtm.presence.getOnlineUsers('room')
  await rtm.presence.getUserChannels('bob')

  await rtm.publish('room', 'kept', { storeInHistory: true })
  let start = 0
  do {
    const page = await rtm.history.getMessages('room', 'MESSAGE', { messageCount: 2, start, end: 0, signal: ac.signal, timeoutMs: 500 })
    for (const m of page.messageList as HistoryMessage[]) {
      const body: string | Uint8Array = m.message
      const mt: MessageType = m.messageType
      console.log(body, mt, m.customType, m.publisher, m.timestamp.toFixed())
    }
    console.log(page.count)
    start = page.newStart
  } while (start !== 0)
  await rtm.history.getMessages('bob', ChannelType.USER)
  await rtm.history.getMessages('room')
  // @ts-expect-error: messageCount is a number
  await rtm.history.getMessages('room', 'MESSAGE', { messageCount: '2' })

  const items: MetadataItem[] = [{ key: 'k', value: 'v', revision: -1 }]
  const w = await rtm.storage.setChannelMetadata('room', 'MESSAGE', items, { majorRevision: -1, lockName: 'door', addTimeStamp: true, addUserId: true })
  console.log(w.totalCount, w.majorRevision)
  await rtm.storage.updateChannelMetadata('room', 'MESSAGE', items)
  await rtm.storage.removeChannelMetadata('room', 'MESSAGE', { data: [{ key: 'k' }], majorRevision: 3 })
  const m = await rtm.storage.getChannelMetadata('room', 'STREAM')
  console.log(m.metadata['k']?.value, m.metadata['k']?.revision, m.metadata['k']?.updated)
  await rtm.storage.setUserMetadata(items, { userId: 'bob', addUserId: true })
  await rtm.storage.updateUserMetadata(items)
  await rtm.storage.removeUserMetadata({ userId: 'bob', data: [{ key: 'k' }] })
  const um = await rtm.storage.getUserMetadata({ userId: 'bob' })
  console.log(um.userId, um.majorRevision)
  await rtm.storage.subscribeUserMetadata('bob')
  await rtm.storage.unsubscribeUserMetadata('bob')
  // @ts-expect-error: metadata values are strings
  await rtm.storage.setUserMetadata([{ key: 'k', value: 1 }])

  await rtm.lock.setLock('room', 'MESSAGE', 'door', { ttl: 30 })
  await rtm.lock.acquireLock('room', 'MESSAGE', 'door', { retry: true, signal: ac.signal, timeoutMs: 1000 })
  const locks = await rtm.lock.getLock('room', 'MESSAGE')
  console.log(locks.totalLocks, locks.lockDetails.map((d) => `${d.lockName}:${d.owner}:${d.ttl}`))
  await rtm.lock.releaseLock('room', 'MESSAGE', 'door')
  await rtm.lock.revokeLock('room', 'MESSAGE', 'door', 'bob')
  await rtm.lock.removeLock('room', 'MESSAGE', 'door')
  await rtm.subscribe('room', { withMetadata: true, withLock: true, withPresence: true, beQuiet: false })
  await rtm.createStreamChannel('stage').join({ withMetadata: true, withLock: true, beQuiet: true })
}

void main()
void disposable()
void services()
console.log(RTMHistory.name)
