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

test('the presence, storage and lock enums, as names and as constants', () => {
  const e = rtm2.enumNames()
  assert.deepEqual(e.presenceEventType, [
    'NONE',
    'SNAPSHOT',
    'INTERVAL',
    'REMOTE_JOIN',
    'REMOTE_LEAVE',
    'REMOTE_TIMEOUT',
    'REMOTE_STATE_CHANGED',
    'ERROR_OUT_OF_SERVICE',
  ])
  assert.deepEqual(e.storageType, ['NONE', 'USER', 'CHANNEL'])
  assert.deepEqual(e.storageEventType, ['NONE', 'SNAPSHOT', 'SET', 'UPDATE', 'REMOVE'])
  assert.deepEqual(e.lockEventType, ['NONE', 'SNAPSHOT', 'SET', 'REMOVED', 'ACQUIRED', 'RELEASED', 'EXPIRED'])
  const pairs = [
    ['ChannelType', 'channelType'],
    ['MessageType', 'messageType'],
    ['MessageQos', 'messageQos'],
    ['MessagePriority', 'messagePriority'],
    ['TopicEventType', 'topicEventType'],
    ['PresenceEventType', 'presenceEventType'],
    ['StorageType', 'storageType'],
    ['StorageEventType', 'storageEventType'],
    ['LockEventType', 'lockEventType'],
    ['ServiceType', 'serviceType'],
    ['LinkState', 'linkState'],
    ['LinkOperation', 'linkOperation'],
    ['LinkStateChangeReason', 'linkStateChangeReason'],
  ]
  for (const [constant, names] of pairs) {
    assert.deepEqual(Object.keys(rtm2[constant]), e[names], constant)
    for (const n of e[names]) assert.equal(rtm2[constant][n], n)
    assert.ok(Object.isFrozen(rtm2[constant]))
  }
  assert.equal(rtm2.LockEventType.ACQUIRED, 'ACQUIRED')
  // The service error codes are in the table with their reference numbers.
  assert.equal(rtm2.ErrorCode.PRESENCE_USER_NOT_EXIST, 13011)
  assert.equal(rtm2.ErrorCode.STORAGE_OUTDATED_REVISION, 12014)
  assert.equal(rtm2.ErrorCode.LOCK_NOT_EXIST, 14008)
})
