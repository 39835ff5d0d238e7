'use strict'
// Against `rtm2 serve` with an app certificate (token notice 2 s): tokens, expiry notices and
// renewal, and same-uid takeover.

const test = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')

const { RTM, ErrorCode, buildToken, buildStreamToken } = require('rtm2')
const { APP_ID, CERT, WAIT_MS, uniq, track, closeAll, startCertServer, waitFor, within, rejectsWithCode } = require('./helpers')

let server

test.before(async () => {
  server = await startCertServer()
})

test.after(async () => {
  await closeAll()
  await server?.stop()
})

function client(userId, config = {}) {
  return track(new RTM(APP_ID, userId, { endpoint: server.endpoint, ...config }))
}

test('bad tokens are rejected with 10005', async () => {
  const user = uniq('alice')
  const a = client(user)
  const failed = waitFor(a, 'linkState', (s) => s.currentState === 'FAILED')
  await rejectsWithCode(assert, a.login({ token: 'garbage' }), ErrorCode.INVALID_TOKEN, 'login')
  assert.equal((await failed).serviceType, 'MESSAGE')
  await rejectsWithCode(assert, a.login(), 10005)
  // A token of another user, or signed with another certificate.
  await rejectsWithCode(assert, a.login({ token: buildToken(APP_ID, CERT, 'mallory', 600) }), 10005)
  await rejectsWithCode(assert, a.login({ token: buildToken(APP_ID, '0'.repeat(32), user, 600) }), 10005)
  // The right token works; the config's token is the default of login().
  await a.login({ token: buildToken(APP_ID, CERT, user, 600) })
  assert.equal(a.linkState, 'CONNECTED')
  await a.logout()
  const b = client(uniq('bob'))
  const withConfigToken = client(b.userId, { token: buildToken(APP_ID, CERT, b.userId, 600) })
  await withConfigToken.login()
  assert.equal(withConfigToken.linkState, 'CONNECTED')
  await withConfigToken.logout()
})

test('events keep flowing when a good login follows a failed one at once', async () => {
  // The failed login's FAILED state reaches JavaScript in the event pump's next batch, which can
  // run while the next login is still starting: it must not stop the pump of the new session.
  for (let i = 0; i < 25; i++) {
    const user = uniq('again')
    const a = client(user)
    await rejectsWithCode(assert, a.login({ token: 'garbage' }), ErrorCode.INVALID_TOKEN, 'login')
    await a.login({ token: buildToken(APP_ID, CERT, user, 600) })
    const channel = uniq('pump')
    await a.subscribe(channel)
    const got = waitFor(a, 'message', (m) => m.channelName === channel, WAIT_MS, `message ${i} after a failed login`)
    await a.publish(channel, `round ${i}`)
    assert.equal((await got).message, `round ${i}`)
    await a.close()
  }
})

test('stream channels need their own token', async () => {
  const user = uniq('carol')
  const a = client(user)
  await a.login({ token: buildToken(APP_ID, CERT, user, 600) })
  const name = uniq('secure')
  const sc = a.createStreamChannel(name)
  await rejectsWithCode(assert, sc.join(), ErrorCode.INVALID_TOKEN, 'join')
  await rejectsWithCode(assert, sc.join({ token: buildStreamToken(APP_ID, CERT, 'other', user, 600) }), 10005)
  await sc.join({ token: buildStreamToken(APP_ID, CERT, name, user, 600) })
  assert.equal(sc.isJoined(), true)
  await a.logout()
})

test('token privilege will expire for a 3-second token, then renewal keeps the session', async () => {
  const user = uniq('dave')
  const a = client(user)
  const notices = []
  const failures = []
  a.on('tokenPrivilegeWillExpire', (ch) => notices.push(ch))
  a.on('linkState', (s) => {
    if (s.currentState === 'FAILED') failures.push(s)
  })
  const willExpire = waitFor(a, 'tokenPrivilegeWillExpire')
  const expiresAt = Date.now() + 3000
  await a.login({ token: buildToken(APP_ID, CERT, user, 3) })
  assert.equal(await willExpire, '', 'the login token is named by an empty channel name')
  await rejectsWithCode(assert, a.renewToken('garbage'), ErrorCode.INVALID_TOKEN, 'renew_token')
  await a.renewToken(buildToken(APP_ID, CERT, user, 600))
  // Past the first token's expiry (plus margin) the session is still usable.
  const margin = expiresAt + 1500 - Date.now()
  assert.ok(margin < WAIT_MS)
  if (margin > 0) await sleep(margin)
  const channel = uniq('still-here')
  const sub = await a.subscribe(channel)
  await a.publish(channel, 'alive')
  const it = sub.messages()
  assert.equal((await within(it.next())).value.message, 'alive')
  await it.return()
  assert.equal(a.linkState, 'CONNECTED')
  assert.deepEqual(failures, [])
  assert.deepEqual(notices, [''])
  await a.logout()
})

test('same-uid login takes over: the first client fails with SAME_UID_LOGIN', async () => {
  const user = uniq('erin')
  const token = buildToken(APP_ID, CERT, user, 600)
  const first = client(user)
  const second = client(user)
  const observer = client(uniq('obs'))
  await first.login({ token })
  await observer.login({ token: buildToken(APP_ID, CERT, observer.userId, 600) })
  const failed = waitFor(first, 'linkState', (s) => s.currentState === 'FAILED')
  await second.login({ token })
  const s = await failed
  assert.equal(s.reasonCode, 'SAME_UID_LOGIN')
  // The reason in the shape every binding uses (number, name, words), beside agora-rtm-sdk's fields.
  assert.equal(s.reasonNumber, 27)
  assert.equal(s.reasonName, 'SAME_UID_LOGIN')
  assert.ok(s.reasonText.length > 0)
  assert.equal(s.reason, s.reasonText)
  assert.equal(s.serviceType, 'MESSAGE')
  assert.equal(s.previousState, 'CONNECTED')
  assert.equal(first.linkState, 'FAILED')
  await rejectsWithCode(assert, first.publish('x', 'y'), ErrorCode.NOT_LOGIN, 'publish')
  // Peer messages now reach the new session.
  const got = waitFor(second, 'message', (m) => m.channelType === 'USER')
  await observer.publish(user, 'to the new session', { channelType: 'USER' })
  assert.equal((await got).message, 'to the new session')
  await second.logout()
  await observer.logout()
})
