'use strict'
// One publisher's messages reach each subscriber in call order, also when the publisher does
// not await each publish (docs/RELIABILITY.md, first claim): paced and unpaced, against the
// embedded server and a standalone `rtm2 serve`.

const test = require('node:test')
const assert = require('node:assert/strict')

const { RTM } = require('rtm2')
const { APP_ID, uniq, track, closeAll, startServer, collect, within } = require('./helpers')

let server

test.before(async () => {
  server = await startServer()
})

test.after(async () => {
  await closeAll()
  await server?.stop()
})

test.afterEach(closeAll)

// Each mode starts `n` publishes of "0", "1", ... in call order without awaiting each before
// the next, and resolves once all of them completed.
const modes = {
  unpaced: { n: 2000, start: (pub, ch, n) => Promise.all(Array.from({ length: n }, (_, i) => pub.publish(ch, String(i)))) },
  hundreds: {
    n: 2000,
    async start(pub, ch, n) {
      for (let s = 0; s < n; s += 100) {
        await Promise.all(Array.from({ length: Math.min(100, n - s) }, (_, i) => pub.publish(ch, String(s + i))))
      }
    },
  },
  paced: {
    n: 2000,
    // One publish per timer tick (about 1 ms apart), none awaited before the next starts.
    async start(pub, ch, n) {
      const started = []
      for (let i = 0; i < n; i++) {
        started.push(pub.publish(ch, String(i)))
        await new Promise((r) => setTimeout(r, 1))
      }
      await Promise.all(started)
    },
  },
}

function inversions(got) {
  let k = 0
  for (let i = 1; i < got.length; i++) if (got[i] < got[i - 1]) k++
  return k
}

for (const where of ['embedded', 'serve']) {
  for (const [mode, { n, start }] of Object.entries(modes)) {
    test(`pipelined publishes arrive in call order (${where}, ${mode})`, async () => {
      const config = where === 'serve' ? { endpoint: server.endpoint } : undefined
      const pub = track(new RTM(APP_ID, uniq('pub'), config))
      const subs = [0, 1].map(() => track(new RTM(APP_ID, uniq('sub'), config)))
      const channel = uniq('order.')
      await pub.login()
      for (const s of subs) {
        await s.login()
        await s.subscribe(channel, { withPresence: false })
      }
      const received = subs.map((s) => collect(s, 'message', n, (m) => m.channelName === channel, 60_000))
      await within(start(pub, channel, n), 60_000, `${n} publishes`)
      for (const got of await Promise.all(received)) {
        const order = got.map((m) => Number(m.message))
        const expected = Array.from({ length: n }, (_, i) => i)
        assert.deepEqual(order, expected, `${mode}: ${inversions(order)} inversions`)
      }
    })
  }
}
