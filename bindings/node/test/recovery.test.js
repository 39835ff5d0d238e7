'use strict'
// Recovery of missed stored messages (docs/RELIABILITY.md): a client whose session cannot be
// resumed — here because its `rtm2 serve` restarted — is told first (linkState CONNECTED, not
// resumed, the channel announced: a restarted server cannot vouch for messages that were not
// stored), then gets every stored message published while it was away, in order, marked
// `recovered` (an rtm2 addition to the message event), and then the live ones, not marked.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { RTM } = require('rtm2')
const { APP_ID, uniq, track, closeAll, within, startServer, waitFor, collect } = require('./helpers')

const servers = []
let dataDir

test.before(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtm2-recovery-'))
})

test.after(async () => {
  await closeAll()
  for (const s of servers) await s.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

/** `rtm2 serve --data-dir` of this file's directory (one server at a time may open it). */
async function serve(opts) {
  const s = await startServer(['--data-dir', dataDir], opts)
  servers.push(s)
  return s
}

async function loggedIn(prefix, endpoint, parameters) {
  const rtm = track(new RTM(APP_ID, uniq(prefix), { endpoint, parameters }))
  await within(rtm.login(), undefined, `${prefix}'s login`)
  return rtm
}

test('stored messages missed during a server restart are recovered, in order, after the notice', async (t) => {
  const first = await serve()
  const a = first.endpoint
  const room = uniq('room')

  const alice = await loggedIn('alice', a, { reconnect_initial_backoff_ms: 20, reconnect_max_backoff_ms: 200 })
  await within(alice.subscribe(room))
  const bob = await loggedIn('bob', a)
  const before = waitFor(alice, 'message', (m) => m.channelName === room)
  await within(bob.publish(room, 'before', { storeInHistory: true }))
  const b = await before
  assert.equal(b.message, 'before')
  assert.equal(b.recovered, false)

  const disconnected = waitFor(alice, 'linkState', (e) => e.serviceType === 'MESSAGE' && e.currentState === 'DISCONNECTED')
  await first.stop()
  await disconnected

  // While alice cannot connect, the same data directory is served elsewhere and written to.
  const elsewhere = await serve()
  const carol = await loggedIn('carol', elsewhere.endpoint)
  for (let i = 0; i < 5; i++) await within(carol.publish(room, `while away ${i}`, { storeInHistory: true }))
  await within(carol.logout())
  await elsewhere.stop()

  // Back at alice's address: she reconnects by herself.
  let noticed = false
  let messagesBeforeNotice = 0
  alice.on('message', () => {
    if (!noticed) messagesBeforeNotice++
  })
  const notice = waitFor(
    alice,
    'linkState',
    (e) => {
      if (e.serviceType === 'MESSAGE' && e.currentState === 'CONNECTED') noticed = true
      return noticed
    },
    20_000,
    'CONNECTED to the restarted server',
  )
  const missed = collect(alice, 'message', 5, (m) => m.channelName === room, 20_000)
  await serve({ listen: a.replace('tcp://', '') })
  const ev = await notice
  assert.equal(ev.isResumed, false)
  assert.deepEqual(ev.affectedChannels, [room], 'a restarted server cannot vouch for the gap')
  assert.equal(messagesBeforeNotice, 0, 'no message before the notice')

  const recovered = await missed
  assert.deepEqual(
    recovered.map((m) => [m.message, m.recovered, m.publisher]),
    [0, 1, 2, 3, 4].map((i) => [`while away ${i}`, true, carol.userId]),
  )
  for (let i = 1; i < recovered.length; i++) assert.ok(recovered[i - 1].timestamp < recovered[i].timestamp)

  const dave = await loggedIn('dave', a)
  const after = waitFor(alice, 'message', (m) => m.channelName === room)
  await within(dave.publish(room, 'after'))
  const m = await after
  assert.deepEqual([m.message, m.recovered], ['after', false])
  t.diagnostic(`recovered ${recovered.length} of 5 missed stored messages; announced: ${ev.affectedChannels}`)
})
