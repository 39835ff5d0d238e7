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
