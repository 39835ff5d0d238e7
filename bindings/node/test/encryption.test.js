'use strict'
// End-to-end encryption (`encryptionMode`, `cipherKey`, `salt`): clients with the same settings
// talk in message channels, peer to peer, in stream topics and through presence states, through
// `rtm2 serve` and the embedded server; a client with another key, or none, gets none of it and
// counts what it dropped (`undecryptableMessages`), and so does an encrypting client with a plain
// one's messages. Invalid settings throw 10020 at construction.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM, RTMError, ErrorCode, EncryptionMode, enumNames } = require('rtm2')
const { APP_ID, WAIT_MS, uniq, track, closeAll, waitFor, startServer, throwsWithCode } = require('./helpers')

const SALT_TEXT = '0123456789abcdef0123456789abcdef'
const SALT = new TextEncoder().encode(SALT_TEXT)

let server
test.before(async () => {
  server = await startServer()
})
test.after(async () => {
  await server?.stop()
})
test.afterEach(closeAll)

/** A client that records every message it receives (in `client.got`). */
function client(prefix, config = {}) {
  const rtm = track(new RTM(APP_ID, uniq(prefix), config))
  rtm.got = []
  rtm.on('message', (m) => rtm.got.push(m))
  return rtm
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits (bounded) until `rtm` has dropped `n` undecryptable messages; checks it is not more. */
async function dropped(rtm, n) {
  const until = Date.now() + WAIT_MS
  while (rtm.undecryptableMessages < n && Date.now() < until) await sleep(20)
  // Events of a batch are delivered together, after the batch was decrypted and counted: a
  // message delivered by mistake would be there by now (and a late one within this pause).
  await sleep(200)
  assert.equal(rtm.undecryptableMessages, n, `${rtm.userId} dropped ${rtm.undecryptableMessages}, not ${n}`)
}

const from = (rtm, publisher) => rtm.got.filter((m) => m.publisher === publisher.userId)

for (const where of ['rtm2 serve', 'embedded']) {
  test(`the same settings talk; another key and a plain client get nothing and count it (${where})`, async () => {
    const endpoint = where === 'embedded' ? 'embedded' : server.endpoint
    // The forms of each setting are the same: a name, a constant or the number; a Uint8Array, a
    // Buffer or the string of the same UTF-8 bytes.
    const alice = client('alice', { endpoint, encryptionMode: 'AES_128_GCM', cipherKey: 'shared secret', salt: SALT })
    const bob = client('bob', { endpoint, encryptionMode: EncryptionMode.AES_128_GCM, cipherKey: 'shared secret', salt: SALT_TEXT })
    const eve = client('eve', { endpoint, encryptionMode: 1, cipherKey: 'another key', salt: Buffer.from(SALT_TEXT) })
    const plain = client('plain', { endpoint })
    for (const c of [alice, bob, eve, plain]) await c.login()
    const room = uniq('room')
    for (const c of [bob, eve, plain]) await c.subscribe(room)
    await alice.subscribe(room, { withMessage: false })

    // A message-channel message.
    let got = waitFor(bob, 'message', (m) => m.channelName === room, WAIT_MS, "alice's message")
    await alice.publish(room, 'top secret plan', { customType: 'note' })
    let m = await got
    assert.deepEqual([m.message, m.messageType, m.publisher, m.customType], ['top secret plan', 'STRING', alice.userId, 'note'])

    // Peer to peer, binary: to bob, and to the two that cannot read it.
    got = waitFor(bob, 'message', (x) => x.channelType === 'USER', WAIT_MS, "alice's peer message")
    for (const c of [bob, eve, plain]) await alice.publish(c.userId, new Uint8Array([0, 1, 2, 255]), { channelType: 'USER' })
    m = await got
    assert.deepEqual([[...m.message], m.messageType, m.publisher], [[0, 1, 2, 255], 'BINARY', alice.userId])

    // A stream topic.
    const stage = uniq('stage')
    const [aSc, bSc] = [alice.createStreamChannel(stage), bob.createStreamChannel(stage)]
    await aSc.join()
    await bSc.join()
    await aSc.joinTopic('t')
    await bSc.subscribeTopic('t', { users: [alice.userId] })
    got = waitFor(bob, 'message', (x) => x.channelType === 'STREAM', WAIT_MS, "alice's topic message")
    await aSc.publishTopicMessage('t', 'on stage')
    m = await got
    assert.deepEqual([m.message, m.channelName, m.topicName, m.publisher], ['on stage', stage, 't', alice.userId])

    // A presence state: bob reads it in clear, the others do not see it.
    const changed = waitFor(
      bob,
      'presence',
      (e) => e.eventType === 'REMOTE_STATE_CHANGED' && e.channelName === room && e.publisher === alice.userId,
      WAIT_MS,
      "alice's state",
    )
    await alice.presence.setState(room, 'MESSAGE', { mood: 'secretly happy' })
    assert.deepEqual((await changed).stateChanged, { mood: 'secretly happy' })
    assert.deepEqual((await bob.presence.getState(alice.userId, room, 'MESSAGE')).states, { mood: 'secretly happy' })
    for (const c of [eve, plain]) {
      assert.deepEqual((await c.presence.getState(alice.userId, room, 'MESSAGE')).states, {}, c.userId)
    }

    // Eve (another key) and the plain client dropped the channel and the peer message, and got
    // none of alice's messages.
    for (const c of [eve, plain]) {
      await dropped(c, 2)
      assert.deepEqual(from(c, alice), [], `${c.userId} received alice's messages`)
    }
    assert.equal(from(bob, alice).length, 3)
    assert.deepEqual([alice.undecryptableMessages, bob.undecryptableMessages], [0, 0])
  })
}

test("a plain and an encrypting client drop each other's messages and count them", async () => {
  const plain = client('plain', { endpoint: server.endpoint })
  const sealed = client('sealed', { endpoint: server.endpoint, encryptionMode: 'AES_256_GCM', cipherKey: 'k', salt: 'pepper' })
  await plain.login()
  await sealed.login()
  const room = uniq('room')
  await plain.subscribe(room)
  await sealed.subscribe(room)

  // Each receives its own messages (echoed) and none of the other's.
  const own = (rtm, text) => waitFor(rtm, 'message', (m) => m.channelName === room && m.message === text, WAIT_MS, text)
  const ownPlain = own(plain, 'plain again')
  const ownSealed = own(sealed, 'sealed')
  await plain.publish(room, 'in clear')
  await sealed.publish(room, 'sealed')
  await plain.publish(room, 'plain again')
  await ownPlain
  await ownSealed
  await dropped(plain, 1)
  await dropped(sealed, 2)
  assert.deepEqual(from(plain, sealed), [])
  assert.deepEqual(from(sealed, plain), [])
  assert.deepEqual(plain.got.map((m) => m.message), ['in clear', 'plain again'])

  // Peer to peer too.
  await plain.publish(sealed.userId, 'psst', { channelType: 'USER' })
  await sealed.publish(plain.userId, 'psst', { channelType: 'USER' })
  await dropped(plain, 2)
  await dropped(sealed, 3)
  assert.deepEqual(from(plain, sealed), [])
  assert.deepEqual(from(sealed, plain), [])

  // The count stays readable once closed.
  await sealed.close()
  assert.equal(sealed.undecryptableMessages, 3)
})

test('invalid encryption settings throw 10020 at construction; valid ones are accepted', async () => {
  assert.equal(ErrorCode.INVALID_ENCRYPTION_PARAMETER, 10020)
  for (const bad of [
    { encryptionMode: 'AES_128_GCM' }, // no key
    { encryptionMode: 'AES_128_GCM', cipherKey: '', salt: SALT },
    { encryptionMode: 'AES_256_GCM', cipherKey: 'k', salt: new Uint8Array(33) },
    { encryptionMode: 'AES_256_GCM', cipherKey: 'k', salt: 'é'.repeat(17) }, // 34 UTF-8 bytes
    { encryptionMode: 'AES_512_GCM', cipherKey: 'k' },
    { encryptionMode: 'aes_128_gcm', cipherKey: 'k' },
    { encryptionMode: 3, cipherKey: 'k' },
    { encryptionMode: 1.5, cipherKey: 'k' },
    { encryptionMode: -1, cipherKey: 'k' },
    { encryptionMode: Number.NaN, cipherKey: 'k' },
    { cipherKey: 'k' }, // a key without a mode: it would go out in clear
    { encryptionMode: 'NONE', salt: 's' },
  ]) {
    const e = throwsWithCode(assert, () => track(new RTM(APP_ID, uniq('bad'), bad)), 10020)
    assert.ok(e instanceof RTMError)
    assert.deepEqual([e.codeName, e.operation], ['INVALID_ENCRYPTION_PARAMETER', 'new'], JSON.stringify(bad))
  }
  // Wrong JavaScript types: TypeError.
  for (const bad of [
    { encryptionMode: true, cipherKey: 'k' },
    { encryptionMode: 'AES_128_GCM', cipherKey: 42 },
    { encryptionMode: 'AES_128_GCM', cipherKey: 'k', salt: [1, 2, 3] },
    { encryptionMode: 'AES_128_GCM', cipherKey: 'k', salt: 42 },
  ]) {
    assert.throws(() => track(new RTM(APP_ID, uniq('bad'), bad)), TypeError, JSON.stringify(bad))
  }
  // A 5-byte salt is zero-padded (accepted), as are 32 bytes, no salt, a Buffer, the number of
  // a mode and NONE with nothing else.
  for (const good of [
    { encryptionMode: 'AES_256_GCM', cipherKey: 'k', salt: new TextEncoder().encode('short') },
    { encryptionMode: EncryptionMode.AES_128_GCM, cipherKey: 'k', salt: SALT },
    { encryptionMode: 2, cipherKey: 'k' },
    { encryptionMode: 'AES_128_GCM', cipherKey: 'k', salt: Buffer.from('pepper') },
    { encryptionMode: 'NONE' },
    { encryptionMode: 0 },
    {},
  ]) {
    const c = track(new RTM(APP_ID, uniq('good'), good))
    assert.equal(c.undecryptableMessages, 0)
    // Not tuning parameters: the settings never show in the parameters.
    const shown = JSON.stringify(c.getParameters())
    assert.ok(!/cipher|salt|encryption/.test(shown), shown)
  }
})

test('EncryptionMode: the native names, as constants', () => {
  assert.deepEqual(enumNames().encryptionMode, ['NONE', 'AES_128_GCM', 'AES_256_GCM'])
  assert.deepEqual(Object.keys(EncryptionMode), enumNames().encryptionMode)
  assert.equal(EncryptionMode.AES_256_GCM, 'AES_256_GCM')
  assert.ok(Object.isFrozen(EncryptionMode))
})
