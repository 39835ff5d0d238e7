// The raw binding (napi-generated index.d.ts) is typed too.
import native = require('rtm2/native')

const c = new native.NativeClient('970CA35de60c44645bbae8a215061b33', 'dave', { endpoint: 'embedded' })
c.startEvents((batch) => batch.forEach((e) => console.log(e.kind)))
const p: Promise<number> = c.login('', 1000, new native.CancelToken())
void p
const presence: native.NativePresence = c.presence()
void presence.getOnlineUsers('room', 'MESSAGE', { includedUserId: true }, 1000, null)
const grant: Promise<native.LockGrant> = c.lock().acquireLock('room', 'MESSAGE', 'door', true, null, new native.CancelToken())
void grant.then((g) => console.log(g.fencingToken, g.timestamp))
const read: Promise<native.MetadataAnswer> = c.storage().getUserMetadata(null)
void read.then((m) => console.log(m.majorRevision, m.timestamp))
const e = new native.NativeClient('970CA35de60c44645bbae8a215061b33', 'erin', { encryptionMode: 'AES_128_GCM', cipherKey: 'k', salt: 'salt' })
const dropped: number = e.undecryptableMessages()
void dropped
