'use strict'
// A pending callback, iterator or open client must not keep the process alive after
// logout()/close(); a logged-in client must (like an open socket).

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { startServer, WAIT_MS } = require('./helpers')

const FIXTURE = path.join(__dirname, 'fixtures', 'lifetime.js')

/** Runs a scenario; resolves with { code, stdout, stderr, timedOut } within `ms`. */
function run(scenario, env = {}, ms = WAIT_MS) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FIXTURE, scenario], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, ms)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

async function exitsOnItsOwn(scenario, env) {
  const r = await run(scenario, env)
  assert.equal(r.timedOut, false, `"${scenario}" did not exit within ${WAIT_MS} ms: ${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /ready/)
}

for (const scenario of ['logout', 'close', 'never-logged-in', 'failed-login', 'taken-over']) {
  test(`embedded: the process exits on its own after "${scenario}"`, () => exitsOnItsOwn(scenario))
}

test('rtm2 serve: the process exits on its own after logout, close and a takeover', async (t) => {
  const server = await startServer()
  t.after(() => server.stop())
  for (const scenario of ['logout', 'close', 'taken-over']) {
    await exitsOnItsOwn(scenario, { RTM2_TEST_ENDPOINT: server.endpoint })
  }
})

test('rtm.messages() ends when the client fails (taken over), so code after a top-level for-await runs', async (t) => {
  const r = await run('iterating-when-taken-over')
  assert.equal(r.timedOut, false, `did not exit within ${WAIT_MS} ms: ${r.stderr}`)
  assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`)
  assert.match(r.stdout, /after the loop/)
  const server = await startServer()
  t.after(() => server.stop())
  const s = await run('iterating-when-taken-over', { RTM2_TEST_ENDPOINT: server.endpoint })
  assert.equal(s.code, 0, `rtm2 serve: exit code ${s.code}: ${s.stderr}`)
  assert.match(s.stdout, /after the loop/)
})

test('a logged-in client keeps the process alive', async () => {
  const r = await run('stay-logged-in', {}, 1500)
  assert.match(r.stdout, /ready/, r.stderr)
  assert.equal(r.timedOut, true, 'the process exited although a client was still logged in')
})

test('a process that exits without close() logs its clients out: others see REMOTE_LEAVE at once', async (t) => {
  const { RTM } = require('rtm2')
  const { APP_ID, uniq, waitFor } = require('./helpers')
  const server = await startServer()
  t.after(() => server.stop())
  const channel = uniq('exit-room')
  const user = uniq('exiter')
  const watcher = new RTM(APP_ID, uniq('watcher'), { endpoint: server.endpoint })
  t.after(() => watcher.close())
  const seen = []
  watcher.on('presence', (e) => e.publisher === user && seen.push(e.eventType))
  await watcher.login()
  await watcher.subscribe(channel)
  const joined = waitFor(watcher, 'presence', (e) => e.eventType === 'REMOTE_JOIN' && e.publisher === user)
  const left = waitFor(watcher, 'presence', (e) => e.eventType === 'REMOTE_LEAVE' && e.publisher === user, 5000)
  left.catch(() => {})
  const r = await run('exit-without-close', {
    RTM2_TEST_ENDPOINT: server.endpoint,
    RTM2_TEST_USER: user,
    RTM2_TEST_CHANNEL: channel,
  })
  assert.equal(r.timedOut, false, r.stderr)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /ready/)
  await joined
  await left
  assert.ok(!seen.includes('REMOTE_TIMEOUT'), JSON.stringify(seen))
})

test('a client given no endpoint uses RTM2_ENDPOINT; an invalid value fails with 10014 naming it', async (t) => {
  const { RTM } = require('rtm2')
  const { APP_ID, uniq } = require('./helpers')
  const server = await startServer()
  t.after(() => server.stop())
  const channel = uniq('env-room')
  const watcher = new RTM(APP_ID, uniq('watcher'), { endpoint: server.endpoint })
  t.after(() => watcher.close())
  await watcher.login()
  await watcher.subscribe(channel)
  const r = await run('default-endpoint', { RTM2_ENDPOINT: server.endpoint, RTM2_TEST_CHANNEL: channel })
  assert.equal(r.code, 0, r.stderr)
  assert.ok(r.stdout.includes(`users ${JSON.stringify([watcher.userId])}`), r.stdout + r.stderr)
  const bad = await run('default-endpoint-invalid', { RTM2_ENDPOINT: 'tcp:/nowhere' })
  assert.equal(bad.code, 0, bad.stderr)
  assert.match(bad.stdout, /error 10014 .*RTM2_ENDPOINT/, bad.stdout + bad.stderr)
})
