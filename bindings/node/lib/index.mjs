// ESM entry of rtm2: the same objects as the CommonJS entry (one native addon per process).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const rtm2 = require('./index.js')

export const {
  RTM,
  RTMError,
  RTMBaseError,
  RTMTimeoutError,
  RTMStreamChannel,
  RTMSubscription,
  RTMPresence,
  RTMStorage,
  RTMLock,
  RTMHistory,
  ErrorCode,
  ChannelType,
  MessageType,
  EncryptionMode,
  MessageQos,
  MessagePriority,
  TopicEventType,
  PresenceEventType,
  StorageType,
  StorageEventType,
  LockEventType,
  ServiceType,
  LinkState,
  LinkOperation,
  LinkStateChangeReason,
  buildToken,
  buildStreamToken,
  setLogHandler,
  VERSION,
  enumNames,
  errorCodes,
} = rtm2
export default rtm2
