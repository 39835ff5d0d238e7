// Type-checked against lib/index.d.ts: CommonJS usage.
import rtm2 = require('rtm2')

const rtm = new rtm2.RTM('970CA35de60c44645bbae8a215061b33', 'bob')
rtm.on('message', (m) => console.log(m.message))
const code: number = rtm2.ErrorCode.NOT_LOGIN
console.log(code, rtm2.VERSION, rtm2.enumNames().linkState.includes('CONNECTED'))
void rtm.presence.whoNow('room', rtm2.ChannelType.STREAM).then((r) => console.log(r.occupants.length))
const acquired: 'ACQUIRED' = rtm2.LockEventType.ACQUIRED
console.log(acquired, rtm2.enumNames().storageEventType)
const sealed = new rtm2.RTM('970CA35de60c44645bbae8a215061b33', 'erin', { encryptionMode: rtm2.EncryptionMode.AES_128_GCM, cipherKey: 'k' })
console.log(sealed.undecryptableMessages.toFixed(), rtm2.enumNames().encryptionMode)
void rtm.history
  .getMessages('room', rtm2.ChannelType.MESSAGE, { messageCount: 2 })
  .then((r: rtm2.GetHistoryMessagesResponse) => console.log(r.count, r.newStart, r.messageList[0]?.message))
const history: rtm2.RTMHistory = rtm.history
console.log(history)
