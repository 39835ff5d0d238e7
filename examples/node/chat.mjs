#!/usr/bin/env node
// A terminal chat on rtm2.
//
//   node examples/node/chat.mjs                         # embedded server, with an echo bot
//   node examples/node/chat.mjs --endpoint tcp://127.0.0.1:9696 --user alice
//   printf 'hello\n/dm bot hi\n' | node examples/node/chat.mjs    # scripted: exits at EOF
//
// Lines you type are published to the channel (default "lobby"); `/dm USER TEXT` sends a
// peer-to-peer message; `/quit` (or Ctrl-D) leaves. With the embedded default (no --endpoint)
// a bot in the same process answers, so there is someone to talk to. Against `rtm2 serve`,
// run it in two terminals with different --user names. --token passes a login token (for a
// server with an app certificate).
//
// Needs the addon built (`cd bindings/node && npm ci && npm run build`) or rtm2 installed.

import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

const { RTM, RTMError } = await import('rtm2').catch(() => import('../../bindings/node/lib/index.mjs'))

const { values: opts } = parseArgs({
  options: {
    endpoint: { type: 'string', default: 'embedded' },
    user: { type: 'string', default: `user-${process.pid}` },
    channel: { type: 'string', default: 'lobby' },
    token: { type: 'string', default: '' },
    'app-id': { type: 'string', default: '970CA35de60c44645bbae8a215061b33' },
  },
})
const embedded = opts.endpoint === 'embedded' || opts.endpoint === ''
const appId = opts['app-id']

const rtm = new RTM(appId, opts.user, { endpoint: opts.endpoint })
rtm.on('linkState', (s) => {
  if (s.serviceType === 'MESSAGE') console.log(`* link ${s.previousState} -> ${s.currentState} (${s.reasonCode})`)
})
rtm.on('tokenPrivilegeWillExpire', () => console.log('* the login token expires soon'))

// Replies the embedded bot owes us (scripted input waits for them before leaving).
let owed = 0
let settled = () => {}

// Everything that arrives (channel and peer-to-peer), until logout.
const printer = (async () => {
  for await (const m of rtm.messages()) {
    const text = typeof m.message === 'string' ? m.message : `<${m.message.length} bytes>`
    const where = m.channelType === 'USER' ? 'dm' : m.channelName
    if (m.publisher !== opts.user) console.log(`[${where}] ${m.publisher}: ${text}`)
    if (m.publisher === 'bot' && --owed === 0) settled()
  }
})()

// With the embedded server, a bot in this process answers (there is nobody else).
let bot
if (embedded) {
  bot = new RTM(appId, 'bot', { endpoint: opts.endpoint })
  await bot.login()
  await bot.subscribe(opts.channel, { withPresence: false })
  bot.on('message', (m) => {
    if (m.publisher === 'bot') return
    const reply = `you said "${m.message}"`
    const p = m.channelType === 'USER' ? bot.publish(m.publisher, reply, { channelType: 'USER' }) : bot.publish(m.channelName, reply)
    p.catch((e) => console.error('* bot:', e.message))
  })
}

try {
  await rtm.login({ token: opts.token })
  await rtm.subscribe(opts.channel)
  console.log(`* ${opts.user} in #${opts.channel} on ${opts.endpoint}; /dm USER TEXT, /quit`)
  const lines = createInterface({ input: process.stdin, terminal: process.stdin.isTTY })
  for await (const line of lines) {
    if (line === '/quit') break
    if (line.trim() === '') continue
    try {
      const dm = /^\/dm (\S+) (.+)$/.exec(line)
      if (dm) await rtm.publish(dm[1], dm[2], { channelType: 'USER', timeoutMs: 5000 })
      else await rtm.publish(opts.channel, line, { customType: 'chat', timeoutMs: 5000 })
      if (bot && (!dm || dm[1] === 'bot')) owed++
    } catch (e) {
      if (!(e instanceof RTMError)) throw e
      console.log(`* ${e.codeName} (${e.code}): ${e.reason}`)
    }
  }
  // Input ended: wait (at most 5 s) for the bot's outstanding replies before leaving.
  if (owed > 0) {
    await new Promise((resolve) => {
      settled = resolve
      setTimeout(resolve, 5000).unref()
    })
  }
} catch (e) {
  console.error(e instanceof RTMError ? `* ${e.message}` : e)
  process.exitCode = 1
} finally {
  await rtm.close()
  await bot?.close()
  await printer
}
