#!/usr/bin/env node
// One subscriber whose messages are delivered into Node.js code: rtm2 (bindings/node) or
// nats.js (`nats` 2.x). Driven by `rtm2-bench lang --lang node` (scripts/bench --only node),
// which publishes from Rust and reads this program's stdout.
//
//   node bench/node/sub.js --system rtm2|nats --addr 127.0.0.1:PORT --messages 1000000
//
// Counts every message in user code (a callback, or a `for await` loop with `--api iter`) and
// checks its length. Protocol on stdout, one line each:
//
//   ready            subscribed (the server confirmed); publishing may start
//   n COUNT          every --ack messages: the running count (the publisher's window)
//   done {json}      the count reached --messages, or no message came for --idle-timeout
//                    seconds: received, bad, dropped, first/last ns
//
// Timestamps are CLOCK_MONOTONIC nanoseconds (process.hrtime), the clock of the harness. After
// `done` the process waits for stdin to close (so the harness can read its CPU time from /proc),
// then exits; it also exits when stdin closes early. The rtm2 package is loaded from
// $RTM2_BENCH_NODE_PKG (default ../../bindings/node); NAPI_RS_NATIVE_LIBRARY_PATH selects its
// addon (scripts/bench points it at a release build).
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const APP_ID = 'b3nchb3nchb3nchb3nchb3nchb3nch01'
const CHANNEL = 'bench'

function parseArgs(argv) {
  const a = {
    system: '',
    addr: '',
    messages: 1_000_000,
    payload: 128,
    api: 'callback',
    ack: 4096,
    idleTimeout: 10,
    firstTimeout: 30,
  }
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]]
    switch (k) {
      case '--system': a.system = v; break
      case '--addr': a.addr = v; break
      case '--messages': a.messages = Number(v); break
      case '--payload': a.payload = Number(v); break
      case '--api': a.api = v; break
      case '--ack': a.ack = Math.max(1, Number(v)); break
      case '--idle-timeout': a.idleTimeout = Number(v); break
      case '--first-timeout': a.firstTimeout = Number(v); break
      default: throw new Error(`unknown argument ${k}`)
    }
  }
  if (!['rtm2', 'nats'].includes(a.system) || !a.addr) throw new Error('--system rtm2|nats and --addr are required')
  if (!['callback', 'iter'].includes(a.api)) throw new Error('--api callback|iter')
  return a
}

const out = (line) => fs.writeSync(1, line + '\n')
const now = () => Number(process.hrtime.bigint())

/** What the subscriber has seen; `onPayload` runs once per delivered message. */
function counter(a) {
  const c = { count: 0, bad: 0, dropped: 0, firstNs: 0, lastNs: 0, finished: false }
  let resolveDone
  c.done = new Promise((r) => (resolveDone = r))
  c.finish = () => {
    if (!c.finished) {
      c.finished = true
      resolveDone()
    }
  }
  const { payload: size, ack, messages: expected } = a
  c.onPayload = (payload) => {
    if (payload.length !== size) c.bad++
    const n = ++c.count
    if (n === 1) c.firstNs = now()
    if (n % ack === 0 || n === expected) {
      c.lastNs = now()
      out(`n ${n}`)
      if (n >= expected) c.finish()
    }
  }
  // Ends the run when no message arrived for the idle timeout.
  c.watch = () => {
    let last = -1
    let since = Date.now()
    const t = setInterval(() => {
      if (c.finished) return clearInterval(t)
      if (c.count !== last) {
        last = c.count
        since = Date.now()
      } else if (Date.now() - since > 1000 * (c.count ? a.idleTimeout : a.firstTimeout)) {
        c.finish()
      }
    }, 50)
  }
  return c
}

async function runRtm2(a, c) {
  const pkg = process.env.RTM2_BENCH_NODE_PKG || path.join(__dirname, '..', '..', 'bindings', 'node')
  const { RTM } = require(pkg)
  const rtm = new RTM(APP_ID, 'sub0', { endpoint: a.addr, requestTimeoutMs: 30000 })
  const onPayload = c.onPayload
  if (a.api === 'callback') {
    rtm.on('message', (m) => onPayload(m.message))
    rtm.on('overflow', (e) => (c.dropped += e.dropped))
    await rtm.login()
    await rtm.subscribe(CHANNEL, { withPresence: false })
    out('ready')
    c.watch()
    await c.done
  } else {
    rtm.on('overflow', (e) => (c.dropped += e.dropped))
    await rtm.login()
    const sub = await rtm.subscribe(CHANNEL, { withPresence: false })
    out('ready')
    c.watch()
    const iterate = (async () => {
      for await (const m of sub) {
        onPayload(m.message)
        if (c.finished) break
      }
    })()
    await c.done
    sub.close()
    await iterate.catch(() => {})
  }
  report(c)
  await rtm.close()
}

async function runNats(a, c) {
  const { connect } = require('nats')
  const nc = await connect({ servers: a.addr, reconnect: false })
  ;(async () => {
    for await (const s of nc.status()) if (s.type === 'slowConsumer') c.dropped++
  })().catch(() => {})
  const onPayload = c.onPayload
  if (a.api === 'callback') {
    nc.subscribe(CHANNEL, { callback: (err, msg) => (err ? (c.error = String(err)) : onPayload(msg.data)) })
    await nc.flush()
    out('ready')
    c.watch()
    await c.done
  } else {
    const sub = nc.subscribe(CHANNEL)
    await nc.flush()
    out('ready')
    c.watch()
    const iterate = (async () => {
      for await (const m of sub) {
        onPayload(m.data)
        if (c.finished) break
      }
    })()
    await c.done
    sub.unsubscribe()
    await iterate.catch(() => {})
  }
  report(c)
  await nc.close()
}

let reported = false
function report(c) {
  reported = true
  const r = { received: c.count, bad: c.bad, dropped: c.dropped, first_ns: c.firstNs, last_ns: c.lastNs, error: c.error }
  out('done ' + JSON.stringify(r))
}

async function main() {
  const a = parseArgs(process.argv.slice(2))
  // The harness closing stdin (or dying) ends this process.
  process.stdin.on('data', () => {})
  process.stdin.on('end', () => process.exit(reported ? 0 : 3))
  process.stdin.on('error', () => process.exit(reported ? 0 : 3))
  const c = counter(a)
  await (a.system === 'rtm2' ? runRtm2 : runNats)(a, c)
  // Stays alive (stdin is open) until the harness has read this process's CPU time.
}

main().catch((e) => {
  out('error ' + JSON.stringify(String(e && e.stack ? e.stack : e)))
  process.exit(2)
})
