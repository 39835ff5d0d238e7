'use strict'
// The generated type declarations match the native tables (no hand-copied codes or names).

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const rtm2 = require('rtm2')

test('lib/generated.d.ts is up to date with the native tables', () => {
  execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'gen-types.js'), '--check'], { stdio: 'pipe' })
  const text = fs.readFileSync(path.join(__dirname, '..', 'lib', 'generated.d.ts'), 'utf8')
  for (const c of rtm2.errorCodes()) assert.ok(text.includes(`readonly ${c.name}: ${c.code}`), c.name)
})

test('event payloads use the native enum names', () => {
  const e = rtm2.enumNames()
  assert.deepEqual(e.linkState, ['IDLE', 'CONNECTING', 'CONNECTED', 'DISCONNECTED', 'SUSPENDED', 'FAILED'])
  assert.ok(e.linkStateChangeReason.includes('SAME_UID_LOGIN'))
  assert.deepEqual(e.topicEventType.slice(1), ['SNAPSHOT', 'REMOTE_JOIN', 'REMOTE_LEAVE'])
  assert.ok(e.channelType.includes('USER'))
})
