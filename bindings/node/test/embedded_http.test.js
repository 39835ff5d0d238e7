'use strict'
// The embedded server serves its HTTP side where RTM2_EMBEDDED_HTTP says, with the Basic
// credentials of RTM2_EMBEDDED_HTTP_AUTH. The embedded server is one per process and reads the
// environment when it starts, so the check runs in a child process with the environment set
// (fixtures/embedded_http.js); this test asserts on what the child got.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const net = require('node:net')
const path = require('node:path')

const { WAIT_MS } = require('./helpers')

const FIXTURE = path.join(__dirname, 'fixtures', 'embedded_http.js')

/** A loopback port nobody listens on (bound to port 0, read, closed). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Runs the fixture with `env`; resolves with { code, signal, stdout, stderr, timedOut } within `ms`. */
function run(env, ms = 3 * WAIT_MS) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FIXTURE], {
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

test('the embedded server serves HTTP where RTM2_EMBEDDED_HTTP says, with RTM2_EMBEDDED_HTTP_AUTH', async () => {
  const port = await freePort()
  const r = await run({
    RTM2_ENDPOINT: '', // the embedded default
    RTM2_EMBEDDED_HTTP: `127.0.0.1:${port}`,
    RTM2_EMBEDDED_HTTP_AUTH: 'ops:secret',
    RTM2_TEST_HTTP_PORT: String(port),
  })
  const out = r.stdout + r.stderr
  assert.equal(r.timedOut, false, `the child did not finish: ${out}`)
  assert.equal(r.code, 0, out)
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('RESULT '))
  assert.equal(lines.length, 1, out)
  const got = JSON.parse(lines[0].slice('RESULT '.length))

  const [usersStatus, usersBody] = got.users
  assert.equal(usersStatus, 200, usersBody)
  assert.deepEqual(JSON.parse(usersBody), { count: 1, users: [{ user_id: 'alice', node_id: '' }] })

  const [noAuthStatus, noAuthBody] = got.usersNoAuth
  assert.equal(noAuthStatus, 401, noAuthBody)

  const [metricsStatus, metrics] = got.metrics
  assert.equal(metricsStatus, 200, metrics)
  assert.ok(metrics.split('\n').includes('rtm2_logins_total{result="ok"} 1'), metrics)
})
