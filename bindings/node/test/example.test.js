'use strict'
// examples/node/chat.mjs runs in one command: on the embedded default and with --endpoint.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { REPO, WAIT_MS, startServer } = require('./helpers')

const CHAT = path.join(REPO, 'examples', 'node', 'chat.mjs')

function chat(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHAT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`chat did not finish within ${WAIT_MS} ms:\n${out}`))
    }, WAIT_MS)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
    child.stdin.end(input)
  })
}

test('chat example on the embedded default talks to its bot', async () => {
  const { code, out } = await chat([], 'hello\n/dm bot hi there\n/dm nobody-here hey\n')
  assert.equal(code, 0, out)
  assert.match(out, /CONNECTING -> CONNECTED/)
  assert.match(out, /\[lobby\] bot: you said "hello"/)
  assert.match(out, /\[dm\] bot: you said "hi there"/)
  assert.match(out, /CHANNEL_RECEIVER_OFFLINE \(11033\)/)
  assert.match(out, /CONNECTED -> IDLE \(LOGOUT\)/)
})

test('chat example with --endpoint (rtm2 serve)', async (t) => {
  const server = await startServer()
  t.after(() => server.stop())
  const { code, out } = await chat(['--endpoint', server.endpoint, '--user', 'carol'], 'hello\n/dm nobody-here x\n')
  assert.equal(code, 0, out)
  assert.ok(out.includes(`carol in #lobby on ${server.endpoint}`), out)
  assert.match(out, /CHANNEL_RECEIVER_OFFLINE \(11033\)/)
  assert.match(out, /CONNECTED -> IDLE \(LOGOUT\)/)
})
