// ESM and CommonJS load the same package: `import` (static and dynamic) and `require`.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import rtm2, { RTM, RTMError, ErrorCode, VERSION, buildToken } from 'rtm2'

const require = createRequire(import.meta.url)
const APP_ID = '970CA35de60c44645bbae8a215061b33'

test('import and require give the same objects', async () => {
  const cjs = require('rtm2')
  const dynamic = await import('rtm2')
  assert.equal(RTM, cjs.RTM)
  assert.equal(dynamic.RTM, cjs.RTM)
  assert.equal(dynamic.default, cjs)
  assert.equal(rtm2.RTMError, RTMError)
  assert.equal(ErrorCode.CHANNEL_RECEIVER_OFFLINE, 11033)
  assert.match(VERSION, /^\d+\.\d+\.\d+/)
  assert.match(buildToken(APP_ID, '5CFd2fd1755d40ecb72977518be15d3b', 'esm', 60), /^007/)
  for (const name of Object.keys(cjs)) assert.ok(name in dynamic, `ESM export ${name} is missing`)
})

test('an ESM program publishes and receives; Symbol.asyncDispose closes the client', async () => {
  // (`await using rtm = new RTM(...)` with TypeScript >= 5.2 or Node >= 24.)
  const rtm = new RTM(APP_ID, `esm-${process.pid}`)
  try {
    await rtm.login()
    const channel = `esm-${process.pid}`
    const sub = await rtm.subscribe(channel)
    await rtm.publish(channel, 'from esm')
    for await (const m of sub) {
      assert.equal(m.message, 'from esm')
      break
    }
    await assert.rejects(rtm.publish('', 'x'), (e) => e instanceof RTMError && e.code === ErrorCode.INVALID_CHANNEL_NAME)
  } finally {
    await rtm[Symbol.asyncDispose]()
  }
  assert.equal(rtm.linkState, 'IDLE')
  await assert.rejects(rtm.login(), (e) => e.code === ErrorCode.INSTANCE_ALREADY_RELEASED)
})
