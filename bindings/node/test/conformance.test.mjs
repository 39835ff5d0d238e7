// The Node runner of the language-neutral conformance scenarios in tests/conformance/
// (format: tests/conformance/README.md; reference runner: rtm2-core/tests/conformance.rs).
// Every scenario runs against a fresh `rtm2 serve` on loopback, through the public `rtm2`
// package API only. One test per scenario file, so a failure names the scenario and its line.
// RTM2_CONFORMANCE_DIR runs the scenarios of another directory (e.g. a modified copy).

import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

import { RTM, RTMError, buildToken, buildStreamToken } from 'rtm2'

const require = createRequire(import.meta.url)
const { APP_ID, CERT, WAIT_MS, REPO, startServer } = require('./helpers.js')

const DEFAULT_DIR = path.join(REPO, 'tests', 'conformance', 'scenarios')
const SCENARIO_DIR = process.env.RTM2_CONFORMANCE_DIR || DEFAULT_DIR
/** How long `server restart` keeps trying to listen on the old port again. */
const REBIND_MS = 5_000

// ---------------------------------------------------------------------------------------------
// The line syntax

/** Splits a line into words; double quotes group, with \" \\ \n escapes. */
function words(line) {
  const out = []
  let cur = ''
  let inWord = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === ' ' || c === '\t') {
      if (inWord) {
        out.push(cur)
        cur = ''
        inWord = false
      }
    } else if (c === '"') {
      inWord = true
      for (;;) {
        i++
        if (i >= line.length) throw new Error('unterminated quote')
        const ch = line[i]
        if (ch === '"') break
        if (ch === '\\') {
          i++
          const e = line[i]
          if (e === 'n') cur += '\n'
          else if (e === '"' || e === '\\') cur += e
          else throw new Error(`bad escape ${e === undefined ? 'at end of line' : JSON.stringify(e)}`)
        } else {
          cur += ch
        }
      }
    } else {
      inWord = true
      cur += c
    }
  }
  if (inWord) out.push(cur)
  return out
}

/** `size:N` stands for N `x` characters. */
function expand(v) {
  const m = /^size:(\d+)$/.exec(v)
  return m ? 'x'.repeat(Number(m[1])) : v
}

/** One step: positional words, `key=value` options and the expected outcome. */
function parseStep(line, w) {
  w = [...w]
  let expectError = null
  const pos = w.indexOf('->')
  if (pos >= 0) {
    const tail = w.splice(pos)
    if (tail.length === 2 && tail[1] === 'ok') {
      // -> ok
    } else if (tail.length === 3 && tail[1] === 'error' && /^\d+$/.test(tail[2])) {
      expectError = Number(tail[2])
    } else {
      throw new Error(`bad outcome ${JSON.stringify(tail)}`)
    }
  }
  if (w.length < 2) throw new Error('a step needs an actor and an operation')
  const [actor, op, ...rest] = w
  const args = []
  const opts = new Map()
  for (const x of rest) {
    const eq = x.indexOf('=')
    const key = eq > 0 ? x.slice(0, eq) : ''
    if (/^[A-Za-z0-9_]+$/.test(key)) opts.set(key, expand(x.slice(eq + 1)))
    else args.push(expand(x))
  }
  return { line, actor, op, args, opts, expectError }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function hex(bytes) {
  return Buffer.from(bytes).toString('hex')
}

function unhex(s) {
  assert.match(s, /^([0-9a-fA-F]{2})*$/, `bad hex ${s}`)
  return new Uint8Array(Buffer.from(s, 'hex'))
}

function flag(opts, k, dflt) {
  return opts.has(k) ? opts.get(k) === 'true' : dflt
}

function list(v) {
  return v === undefined || v === '' ? [] : v.split(',')
}

/** Awaits `promise` within `ms` (the promise's own later failure is then ignored). */
async function bounded(promise, what, ms = WAIT_MS) {
  let timer
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  promise.catch(() => {})
  try {
    return await Promise.race([promise, guard])
  } finally {
    clearTimeout(timer)
  }
}

/** The events of one client, in order, from its creation on. */
class EventQueue {
  #items = []
  #wake = null

  push(ev) {
    this.#items.push(ev)
    this.#wake?.()
  }

  /** The next event, or null once `deadline` (ms since the epoch) has passed. */
  async next(deadline) {
    while (this.#items.length === 0) {
      const left = deadline - Date.now()
      if (left <= 0) return null
      let timer
      await new Promise((resolve) => {
        this.#wake = resolve
        timer = setTimeout(resolve, left)
      })
      clearTimeout(timer)
      this.#wake = null
    }
    return this.#items.shift()
  }
}

function describe(ev) {
  return JSON.stringify(ev, (_k, v) => (v instanceof Uint8Array ? `<bytes ${hex(v)}>` : v))
}

/** The comparable fields of an event if it is of `kind` (null for other kinds). */
function fields(ev, kind, line) {
  if (ev.kind === 'overflow') throw new Error(`line ${line}: event queue overflow: ${describe(ev.payload)}`)
  const p = ev.payload
  if (ev.kind === 'message' && kind === 'message') {
    const isString = typeof p.message === 'string'
    return {
      channel_type: p.channelType,
      channel: p.channelName,
      topic: p.topicName,
      publisher: p.publisher,
      text: p.messageType === 'STRING' && isString ? p.message : '',
      hex: isString ? Buffer.from(p.message, 'utf8').toString('hex') : hex(p.message),
      message_type: p.messageType,
      custom_type: p.customType,
    }
  }
  if (ev.kind === 'topic' && kind === 'topic_event') {
    const first = p.topicInfos[0]
    const pub = first?.publishers[0]
    return {
      type: p.eventType,
      channel: p.channelName,
      topic: first?.topicName ?? '',
      meta: pub?.publisherMeta ?? '',
      // A snapshot has no publisher of its own: compare the first topic's first publisher.
      publisher: p.eventType === 'SNAPSHOT' ? (pub?.publisherUserId ?? '') : p.publisher,
    }
  }
  if (ev.kind === 'linkState' && kind === 'link_state') {
    return { service: p.serviceType, state: p.currentState, reason: p.reasonCode, channel: p.channelName }
  }
  if (ev.kind === 'tokenPrivilegeWillExpire' && kind === 'token_will_expire') {
    return { channel: p }
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// The runner

class Runner {
  server = null
  /** The flags of `rtm2 serve` besides --listen, and whether the rate limits stay on. */
  args = []
  rateLimits = false
  cert = false
  /** name -> { rtm, events, user } */
  clients = new Map()

  async start(w) {
    const mode = w[1] ?? 'dev'
    if (mode !== 'dev' && mode !== 'cert') throw new Error(`unknown server mode ${mode}`)
    this.cert = mode === 'cert'
    let notice = 30
    for (const x of w.slice(2)) {
      if (x.startsWith('notice=')) notice = Number(x.slice('notice='.length))
      else if (x === 'rate_limits=reference') this.rateLimits = true
      else if (x === 'rate_limits=off') this.rateLimits = false
      else if (x.startsWith('rate_limits=')) throw new Error(`unknown ${x}`)
    }
    if (this.cert) {
      this.args = ['--app-id', APP_ID, '--app-certificate', CERT, '--token-notice-secs', String(notice)]
    }
    this.server = await startServer(this.args, { rateLimits: this.rateLimits })
  }

  get endpoint() {
    return this.server.endpoint
  }

  /** Kills the server and starts a new one with the same flags on the same port. */
  async restart() {
    const listen = this.endpoint.replace(/^tcp:\/\//, '')
    await this.server.stop()
    const until = Date.now() + REBIND_MS
    for (;;) {
      try {
        this.server = await startServer(this.args, { listen, rateLimits: this.rateLimits })
        return
      } catch (e) {
        if (Date.now() >= until) throw new Error(`could not listen on ${listen} again: ${e.message}`)
        await new Promise((r) => setTimeout(r, 25))
      }
    }
  }

  addClient(w) {
    const name = w[1]
    assert.ok(name, 'client needs a name')
    const user = w
      .slice(2)
      .find((x) => x.startsWith('user='))
      ?.slice('user='.length) ?? name
    const rtm = new RTM(APP_ID, user, { endpoint: this.endpoint, reconnectInitialBackoffMs: 20 })
    const events = new EventQueue()
    for (const kind of ['message', 'topic', 'linkState', 'tokenPrivilegeWillExpire', 'overflow']) {
      rtm.on(kind, (payload) => events.push({ kind, payload }))
    }
    this.clients.set(name, { rtm, events, user })
  }

  token(kind = 'auto', user, channel) {
    const build = (u, secs) =>
      channel !== undefined ? buildStreamToken(APP_ID, CERT, channel, u, secs) : buildToken(APP_ID, CERT, u, secs)
    if (kind === 'auto' && this.cert) return build(user, 3600)
    if (kind === 'auto' || kind === 'none') return ''
    if (kind === 'bad') return '007garbage'
    if (kind === 'expired') return build(user, 0)
    if (kind === 'other') return build('someone-else', 3600)
    const m = /^short:(\d+)$/.exec(kind)
    if (m) return build(user, Number(m[1]))
    throw new Error(`unknown token kind ${kind}`)
  }

  client(s) {
    const c = this.clients.get(s.actor)
    if (!c) throw new Error(`line ${s.line}: unknown client ${s.actor}`)
    return c
  }

  async op(s) {
    const { rtm, user } = this.client(s)
    const a = (i) => {
      if (i >= s.args.length) throw new Error(`line ${s.line}: missing argument ${i}`)
      return s.args[i]
    }
    const o = s.opts
    switch (s.op) {
      case 'login':
        return rtm.login({ token: this.token(o.get('token'), user) })
      case 'logout':
        return rtm.logout()
      case 'renew_token': {
        const ch = o.get('channel')
        if (ch !== undefined) return rtm.renewToken(this.token(o.get('token'), user, ch), { channelName: ch })
        return rtm.renewToken(this.token(o.get('token'), user))
      }
      case 'set_parameters':
        return rtm.setParameters(a(0))
      case 'subscribe': {
        const sub = await rtm.subscribe(a(0), {
          withMessage: flag(o, 'with_message', true),
          withPresence: flag(o, 'with_presence', true),
          beQuiet: flag(o, 'be_quiet', false),
        })
        // The runner reads the client's events; this handle's own queue is not needed.
        sub.close()
        return
      }
      case 'unsubscribe':
        return rtm.unsubscribe(a(0))
      case 'publish':
      case 'publish_binary':
      case 'publish_size': {
        const opts = { customType: o.get('custom_type') ?? '' }
        if (o.get('channel_type') === 'USER') opts.channelType = 'USER'
        let payload
        if (s.op === 'publish') payload = a(1)
        else if (s.op === 'publish_binary') payload = unhex(a(1))
        else payload = 'x'.repeat(Number(a(1)))
        return rtm.publish(a(0), payload, opts)
      }
      case 'join': {
        const token = this.token(o.get('token'), user, a(0))
        await rtm.createStreamChannel(a(0)).join({ token })
        return
      }
      case 'leave':
        return rtm.createStreamChannel(a(0)).leave()
      case 'join_topic':
        return rtm.createStreamChannel(a(0)).joinTopic(a(1), { meta: o.get('meta') ?? '' })
      case 'leave_topic':
        return rtm.createStreamChannel(a(0)).leaveTopic(a(1))
      case 'publish_topic':
        return rtm.createStreamChannel(a(0)).publishTopicMessage(a(1), a(2), { customType: o.get('custom_type') ?? '' })
      case 'subscribe_topic': {
        const r = await rtm.createStreamChannel(a(0)).subscribeTopic(a(1), { users: list(o.get('users')) })
        if (o.has('succeeded')) {
          assert.deepEqual(r.succeedUsers, list(o.get('succeeded')), `line ${s.line}: succeeded users`)
        }
        if (o.has('failed')) {
          const got = r.failedUsers.map((f) => `${f.userId}:${f.code}`)
          assert.deepEqual(got, list(o.get('failed')), `line ${s.line}: failed users`)
        }
        return
      }
      case 'unsubscribe_topic':
        return rtm.createStreamChannel(a(0)).unsubscribeTopic(a(1), { users: list(o.get('users')) })
      case 'subscribed_users': {
        const r = await rtm.createStreamChannel(a(0)).getSubscribedUserList(a(1))
        if (o.has('users')) assert.deepEqual(r.users, list(o.get('users')), `line ${s.line}: subscribed users`)
        return
      }
      default:
        throw new Error(`line ${s.line}: unknown operation ${s.op}`)
    }
  }

  async expect(s) {
    const kind = s.args[0] ?? ''
    const { events } = this.client(s)
    const deadline = Date.now() + WAIT_MS
    for (;;) {
      const ev = await events.next(deadline)
      if (ev === null) throw new Error(`line ${s.line}: ${s.actor}: no matching ${kind} event within ${WAIT_MS} ms`)
      const got = fields(ev, kind, s.line)
      if (got === null) continue
      let mismatch = null
      for (const [k, want] of [...s.opts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
        if (!(k in got)) throw new Error(`line ${s.line}: unknown field ${k}`)
        if (got[k] !== want) {
          mismatch = [k, want]
          break
        }
      }
      const loginNotice = kind === 'token_will_expire' && !s.opts.has('channel') && got.channel !== ''
      if (mismatch === null && !loginNotice) return
      // The next message must be the expected one: no extra, missing or reordered messages.
      if (mismatch !== null && kind === 'message') {
        const [k, want] = mismatch
        const [have, wanted, event] = [JSON.stringify(got[k]), JSON.stringify(want), describe(ev.payload)]
        throw new Error(`line ${s.line}: ${s.actor}: field ${k} is ${have}, expected ${wanted} in ${event}`)
      }
    }
  }

  async runStep(s) {
    if (s.op === 'expect') return this.expect(s)
    const what = `line ${s.line}: ${s.actor} ${s.op}`
    let error = null
    try {
      await bounded(this.op(s), what)
    } catch (e) {
      if (!(e instanceof RTMError)) throw e
      error = e
    }
    if (s.expectError === null) {
      if (error !== null) throw new Error(`${what}: unexpected error ${error.message}`)
    } else if (error === null) {
      throw new Error(`${what}: succeeded, expected error ${s.expectError}`)
    } else {
      assert.equal(error.code, s.expectError, `${what}: wrong code (${error.message})`)
    }
  }

  /** Closes every client, then stops the server (bounded). */
  async close() {
    const all = [...this.clients.values()].map((c) => c.rtm.close())
    this.clients.clear()
    await bounded(Promise.allSettled(all), 'the clients to close')
    await this.server?.stop()
  }
}

async function runScenario(file) {
  const text = fs.readFileSync(file, 'utf8')
  let runner = null
  const need = () => {
    if (runner === null) throw new Error('server must be the first step')
    return runner
  }
  try {
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const lineNo = i + 1
      const line = lines[i].trim()
      if (line === '' || line.startsWith('#')) continue
      let w
      try {
        w = words(line)
      } catch (e) {
        throw new Error(`${path.basename(file)}:${lineNo}: ${e.message}`)
      }
      if (w[0] === 'server' && w[1] === 'restart') {
        await need().restart()
      } else if (w[0] === 'server') {
        if (runner !== null) throw new Error(`line ${lineNo}: a second server step`)
        runner = new Runner()
        await runner.start(w)
      } else if (w[0] === 'client') {
        need().addClient(w)
      } else if (w[0] === 'repeat') {
        const n = Number(w[1])
        if (!Number.isInteger(n) || n < 0) throw new Error(`line ${lineNo}: bad repeat count ${w[1]}`)
        for (let k = 0; k < n; k++) {
          const ws = w.slice(2).map((x) => x.replaceAll('{i}', String(k)))
          await need().runStep(parseStep(lineNo, ws))
        }
      } else {
        await need().runStep(parseStep(lineNo, w))
      }
    }
  } finally {
    await runner?.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Tests

const scenarios = fs
  .readdirSync(SCENARIO_DIR)
  .filter((f) => f.endsWith('.scn'))
  .sort()

test('the scenario files are there', () => {
  assert.ok(scenarios.length >= (SCENARIO_DIR === DEFAULT_DIR ? 7 : 1), `scenarios missing in ${SCENARIO_DIR}`)
})

test('the line syntax', () => {
  assert.deepEqual(words('a "b c" d="e \\"f\\"" \\n'), ['a', 'b c', 'd=e "f"', '\\n'])
  assert.deepEqual(words('x ""'), ['x', ''])
  const s = parseStep(1, words('alice publish room "hi there" custom_type=size:3 -> error 11010'))
  assert.equal(s.actor, 'alice')
  assert.equal(s.op, 'publish')
  assert.deepEqual(s.args, ['room', 'hi there'])
  assert.equal(s.opts.get('custom_type'), 'xxx')
  assert.equal(s.expectError, 11010)
  assert.equal(parseStep(1, words('a subscribe_topic s t failed=')).opts.get('failed'), '')
  assert.deepEqual(parseStep(1, words('a set_parameters "{\\"k\\": 1}"')).args, ['{"k": 1}'])
  assert.throws(() => words('"open'), /unterminated quote/)
  assert.throws(() => parseStep(1, words('a login -> fine')), /bad outcome/)
})

for (const name of scenarios) {
  test(`scenario ${name}`, async () => {
    await runScenario(path.join(SCENARIO_DIR, name))
  })
}
