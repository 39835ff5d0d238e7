'use strict'
// TLS: a `tls://` endpoint is verified against the CA file given with setParameters.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, execFileSync } = require('node:child_process')
const { RTM, ErrorCode } = require('rtm2')
const { APP_ID, uniq, track, closeAll, within, rejectsWithCode, RTM2_BIN } = require('./helpers')

let dir
let server
let endpoint

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtm2-node-tls-'))
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:FALSE',
  ], { stdio: 'ignore', timeout: 30_000 })
  server = spawn(RTM2_BIN, [
    'serve', '--listen', '127.0.0.1:0', '--no-rate-limits', '--tls-listen', '127.0.0.1:0',
    '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'),
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  endpoint = await within(new Promise((resolve, reject) => {
    let err = ''
    server.stderr.setEncoding('utf8')
    server.stderr.on('data', (chunk) => {
      err += chunk
      const m = /listening on (\S+) \(tls\)/.exec(err)
      if (m) resolve(`tls://${m[1]}`)
    })
    server.on('exit', (code) => reject(new Error(`rtm2 serve exited (${code}): ${err}`)))
  }))
})

test.after(async () => {
  await closeAll()
  server?.kill('SIGKILL')
  fs.rmSync(dir, { recursive: true, force: true })
})

test('tls:// with the CA file: messages flow', async () => {
  const ca = JSON.stringify({ tls_ca_file: path.join(dir, 'cert.pem') })
  const alice = track(new RTM(APP_ID, uniq('alice'), { endpoint }))
  const bob = track(new RTM(APP_ID, uniq('bob'), { endpoint }))
  alice.setParameters(ca)
  bob.setParameters(ca)
  await alice.login()
  await bob.login()
  const room = uniq('room')
  const sub = await bob.subscribe(room)
  await alice.publish(room, 'over tls')
  for await (const m of sub) {
    assert.equal(m.message, 'over tls')
    break
  }
})

test('tls:// without the CA: the server is refused (10007)', async () => {
  const eve = track(new RTM(APP_ID, uniq('eve'), { endpoint }))
  const e = await rejectsWithCode(assert, eve.login(), ErrorCode.INIT_SERVICE_FAILED, 'login')
  assert.match(e.reason, /certificate/i)
})
