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
  type TokenEvent,
  type ErrorInfo,
  type LoginResponse,
  type LogoutResponse,
  type PublishResponse,
  type SubscribeResponse,
  type UnsubscribeResponse,
  type RenewTokenResponse,
  type JoinChannelResponse,
  type LeaveChannelResponse,
  type JoinTopicResponse,
  type LeaveTopicResponse,
  type PublishTopicMessageResponse,
  type SubscribeTopicResponse,
  type UnsubscribeTopicResponse,
  type SubscribedFailedReason,
  type FailedUser,
  type SetStateResponse,
  type PresenceChannelResponse,
  type SetLockResponse,
  type LockResponse,
  type SubscribeUserMetaResponse,
  type SetChannelMetadataResponse,
  type ChannelMetadataResponse,
  type GetOnlineUsersResponse,
  type WhoNowResponse,
  type GetUserChannelsResponse,
  type WhereNowResponse,
  type GetStateResponse,
  type GetChannelMetadataResponse,
  type SetUserMetadataResponse,
  type GetUserMetadataResponse,
  type AcquireLockResponse,
  type GetLockResponse,
  type GetHistoryMessagesResponse,
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
rtm.on('token', (e: TokenEvent) => {
  if (e.eventType === 'WILL_EXPIRE') console.log(e.reason, e.affectedResources.messageChannels, e.affectedResources.streamChannels, e.timestamp.toFixed())
})
rtm.on('overflow', (o) => console.log(o.dropped, o.source))
// @ts-expect-error: not an event of RTM
rtm.on('no-such-event', () => {})
// @ts-expect-error: the listener's argument is a MessageEvent
rtm.addEventListener('message', (e: LinkStateEvent) => e)

async function main(): Promise<void> {
  const token: string = buildToken('970CA35de60c44645bbae8a215061b33', '5CFd2fd1755d40ecb72977518be15d3b', 'alice', 600)
  const loggedIn: LoginResponse = await rtm.login({ token, timeoutMs: 3000 })
  console.log(loggedIn.timestamp.toFixed())
  const ac = new AbortController()
  const sub = await rtm.subscribe('room', { withMessage: true, withPresence: false, signal: ac.signal })
  // agora-rtm-sdk's SubscribeResponse, and iterable.
  const { channelName, timestamp }: SubscribeResponse = sub
  console.log(channelName, timestamp.toFixed())
  const published: PublishResponse = await rtm.publish('room', 'hello', { customType: 'text', timeoutMs: 1000 })
  console.log(published.channelName, published.timestamp.toFixed())
  const renewed: RenewTokenResponse = await rtm.renewToken(token)
  console.log(renewed.timestamp, renewed.channelName ?? 'login token')
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
  const joined: JoinChannelResponse = await sc.join({ token: buildStreamToken('a', 'b', 'stage', 'alice', 60), withPresence: true })
  console.log(joined.topicInfos.length, joined.timestamp)
  const jt: JoinTopicResponse = await sc.joinTopic('slides', { qos: 'ORDERED', priority: 'HIGH', meta: 'presenter' })
  console.log(jt.channelName, jt.topicName, jt.timestamp)
  const r: SubscribeTopicResponse = await sc.subscribeTopic('slides', { users: ['bob'] })
  const failed: string[] = r.failedUsers
  const details: SubscribedFailedReason[] = r.failedDetails
  const old: FailedUser | undefined = details[0]
  console.log(r.succeedUsers, failed, details.map((f) => `${f.user}:${f.errorCode}:${f.reason}`), old?.user, r.timestamp, r.topicName)
  const pt: PublishTopicMessageResponse = await sc.publishTopicMessage('slides', 'page 1', { customType: 'page' })
  console.log(pt.timestamp)
  const list = sc.getSubscribedUserList('slides')
  console.log(list.subscribed, list.users, list.totalUser)
  const ut: UnsubscribeTopicResponse = await sc.unsubscribeTopic('slides', { users: [] })
  const lt: LeaveTopicResponse = await sc.leaveTopic('slides')
  const rt: RenewTokenResponse = await rtm.renewToken('t', { channelName: 'stage' })
  const left: LeaveChannelResponse = await sc.leave({ timeoutMs: 500 })
  console.log(ut.topicName, lt.topicName, rt.channelName, left.channelName, left.timestamp)
  try {
    const u: UnsubscribeResponse = await rtm.unsubscribe('room')
    console.log(u.channelName, u.timestamp)
  } catch (e) {
    if (e instanceof RTMError) {
      const info: ErrorInfo = e
      const flag: true = e.error
      console.log(info.errorCode, info.reason, info.operation, flag)
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
  const out: LogoutResponse = await rtm.logout()
  console.log(out.timestamp)
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
  const set: SetStateResponse = await rtm.presence.setState('room', ChannelType.MESSAGE, { mood: 'happy' })
  const formerName: PresenceChannelResponse = set
  console.log(set.channelName, set.channelType, set.timestamp, formerName.timestamp)
  await rtm.presence.setState('room', 'STREAM', [['a', '1'], { key: 'b', value: '2' }], { timeoutMs: 500 })
  await rtm.presence.setState('room', undefined, new Map([['c', '3']]))
  const who = await rtm.presence.whoNow('room', 'MESSAGE', { includedUserId: true, includedState: true, page: '', signal: ac.signal })
  console.log(who.totalOccupancy, who.nextPage, who.occupants[0]?.states, who.timestamp.toFixed())
  const where = await rtm.presence.whereNow('')
  console.log(where.totalChannel, where.channels.map((c) => c.channelType), where.timestamp.toFixed())
  const st: GetStateResponse = await rtm.presence.getState('bob', 'room', 'MESSAGE')
  console.log(st.userId, st.statesCount, st.channelName, st.timestamp.toFixed())
  await rtm.presence.removeState('room', 'MESSAGE', { states: ['mood'] })
  const online: GetOnlineUsersResponse = await rtm.presence.getOnlineUsers('room')
  const who2: WhoNowResponse = online
  const channels: GetUserChannelsResponse = await rtm.presence.getUserChannels('bob')
  const where2: WhereNowResponse = channels
  console.log(online.timestamp, who2.timestamp, channels.timestamp, where2.timestamp)

  await rtm.publish('room', 'kept', { storeInHistory: true })
  let start = 0
  do {
    const page = await rtm.history.getMessages('room', 'MESSAGE', { messageCount: 2, start, end: 0, signal: ac.signal, timeoutMs: 500 })
    for (const m of page.messageList as HistoryMessage[]) {
      const body: string | Uint8Array = m.message
      const mt: MessageType = m.messageType
      console.log(body, mt, m.customType, m.publisher, m.timestamp.toFixed())
    }
    const typed: GetHistoryMessagesResponse = page
    console.log(page.count, typed.timestamp.toFixed())
    start = page.newStart
  } while (start !== 0)
  await rtm.history.getMessages('bob', ChannelType.USER)
  await rtm.history.getMessages('room')
  // @ts-expect-error: messageCount is a number
  await rtm.history.getMessages('room', 'MESSAGE', { messageCount: '2' })

  const items: MetadataItem[] = [{ key: 'k', value: 'v', revision: -1 }]
  const w: SetChannelMetadataResponse = await rtm.storage.setChannelMetadata('room', 'MESSAGE', items, { majorRevision: -1, lockName: 'door', addTimeStamp: true, addUserId: true })
  const w2: ChannelMetadataResponse = w
  console.log(w.totalCount, w.majorRevision, w2.channelName, w.timestamp.toFixed())
  await rtm.storage.updateChannelMetadata('room', 'MESSAGE', items)
  await rtm.storage.removeChannelMetadata('room', 'MESSAGE', { data: [{ key: 'k' }], majorRevision: 3 })
  const m: GetChannelMetadataResponse = await rtm.storage.getChannelMetadata('room', 'STREAM')
  console.log(m.metadata['k']?.value, m.metadata['k']?.revision, m.metadata['k']?.updated, m.timestamp.toFixed())
  const uw: SetUserMetadataResponse = await rtm.storage.setUserMetadata(items, { userId: 'bob', addUserId: true })
  console.log(uw.userId, uw.majorRevision, uw.timestamp.toFixed())
  await rtm.storage.updateUserMetadata(items)
  await rtm.storage.removeUserMetadata({ userId: 'bob', data: [{ key: 'k' }] })
  const um: GetUserMetadataResponse = await rtm.storage.getUserMetadata({ userId: 'bob' })
  console.log(um.userId, um.majorRevision, um.timestamp.toFixed())
  const sum: SubscribeUserMetaResponse = await rtm.storage.subscribeUserMetadata('bob')
  console.log(sum.userId, sum.timestamp)
  await rtm.storage.unsubscribeUserMetadata('bob')
  // @ts-expect-error: metadata values are strings
  await rtm.storage.setUserMetadata([{ key: 'k', value: 1 }])

  const sl: SetLockResponse = await rtm.lock.setLock('room', 'MESSAGE', 'door', { ttl: 30 })
  const sl2: LockResponse = sl
  console.log(sl.lockName, sl.timestamp, sl2.channelType)
  const acquired: AcquireLockResponse = await rtm.lock.acquireLock('room', 'MESSAGE', 'door', { retry: true, signal: ac.signal, timeoutMs: 1000 })
  console.log(acquired.fencingToken, acquired.lockName, acquired.timestamp.toFixed())
  // @ts-expect-error: the fencing token is a number
  const badToken: string = acquired.fencingToken
  void badToken
  const locks: GetLockResponse = await rtm.lock.getLock('room', 'MESSAGE')
  console.log(locks.totalLocks, locks.lockDetails.map((d) => `${d.lockName}:${d.owner}:${d.ttl}`), locks.timestamp.toFixed())
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
