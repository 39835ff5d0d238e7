// The Node runner of the language-neutral conformance scenarios in tests/conformance/
// (format: tests/conformance/README.md; reference runner: rtm2-core/tests/conformance.rs).
// Every scenario runs against a fresh `rtm2 serve` on loopback (`scenario NAME`), through the
// public `rtm2` package API only, and, when a nats-server is there (RTM2_NATS_SERVER is set or
// .venv-nats/bin/nats-server exists in the repository), also against a fresh 3-node cluster
// (`scenario NAME [cluster]`, started by tests/conformance/cluster.py): the i-th client of the
// scenario connects to node i mod 3, a ghost to the next node of the same rotation, and
// `server restart` restarts every node. Scenarios whose services do not cross nodes yet are in
// CLUSTER_PENDING and skipped in cluster mode with their reason.
// One test per scenario file and mode, so a failure names the scenario, the mode and the line.
// RTM2_CONFORMANCE_DIR runs the scenarios of another directory (e.g. a modified copy).

import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

import { RTM, RTMError, buildToken, buildStreamToken } from 'rtm2'

const require = createRequire(import.meta.url)
const { APP_ID, CERT, WAIT_MS, REPO, RTM2_BIN, startServer, startGhost } = require('./helpers.js')

const DEFAULT_DIR = path.join(REPO, 'tests', 'conformance', 'scenarios')
const SCENARIO_DIR = process.env.RTM2_CONFORMANCE_DIR || DEFAULT_DIR
/** How long `server restart` keeps trying to listen on the old port again. */
const REBIND_MS = 5_000
const CLUSTER_PY = path.join(REPO, 'tests', 'conformance', 'cluster.py')
const CLUSTER_NODES = 3
/** How long the cluster launcher may take to start (or restart) NATS and the nodes. */
const CLUSTER_WAIT_MS = 60_000
/** The scenarios that cannot pass against a cluster yet, with the reason (skipped, never run as passing). */
const CLUSTER_PENDING = new Map([])

/** The rule of every runner: RTM2_NATS_SERVER is set or .venv-nats/bin/nats-server exists. */
function clusterAvailable() {
  return Boolean(process.env.RTM2_NATS_SERVER) || fs.existsSync(path.join(REPO, '.venv-nats', 'bin', 'nats-server'))
}

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

/** A list as a canonical set: sorted, comma-joined (list checks compare sets). */
function set(values) {
  return [...values].sort().join(',')
}

/** `k:v,k2:v2` (or the generators `count=`, `big_key=`, `big_value=`) as [key, value] pairs. */
function pairs(opts, listKey) {
  if (opts.has('count')) return Array.from({ length: Number(opts.get('count')) }, (_, i) => [`k${i}`, 'v'])
  if (opts.has('big_key')) return [['x'.repeat(Number(opts.get('big_key'))), 'v']]
  if (opts.has('big_value')) return [[`big${opts.get('big_value')}`, 'x'.repeat(Number(opts.get('big_value')))]]
  return list(opts.get(listKey)).map((p) => {
    const i = p.indexOf(':')
    return i < 0 ? [p, ''] : [p.slice(0, i), p.slice(i + 1)]
  })
}

/** `channel_type=` (default MESSAGE). */
function channelType(opts) {
  return opts.get('channel_type') ?? 'MESSAGE'
}

/** A state (key -> value object) as a set of `k:v`. */
function stateSet(states) {
  return set(Object.entries(states).map(([k, v]) => `${k}:${v}`))
}

/** The metadata write options of a step: `major=`, `lock=`, `record_ts=`, `record_author=`. */
function metadataOptions(opts) {
  return {
    majorRevision: opts.has('major') ? Number(opts.get('major')) : undefined,
    lockName: opts.get('lock'),
    addTimeStamp: flag(opts, 'record_ts', false),
    addUserId: flag(opts, 'record_author', false),
  }
}

/** The items of a metadata write: `items=` (or a generator) with `revision=`, plus `keys=`. */
function metadataItems(opts) {
  const revision = opts.has('revision') ? Number(opts.get('revision')) : undefined
  return [
    ...pairs(opts, 'items').map(([key, value]) => ({ key, value, revision })),
    ...list(opts.get('keys')).map((key) => ({ key })),
  ]
}

function checkWrite(s, w) {
  if (s.opts.has('result_major')) assert.equal(String(w.majorRevision), s.opts.get('result_major'), `line ${s.line}: major revision after the write`)
  if (s.opts.has('total')) assert.equal(String(w.totalCount), s.opts.get('total'), `line ${s.line}: item count after the write`)
}

function checkMetadata(s, m) {
  const o = s.opts
  if (o.has('items')) {
    const have = set(Object.entries(m.metadata).map(([k, d]) => `${k}:${d.value}`))
    assert.equal(have, set(list(o.get('items'))), `line ${s.line}: items`)
  }
  if (o.has('major')) assert.equal(String(m.majorRevision), o.get('major'), `line ${s.line}: major revision`)
  for (const [k, author] of pairs(o, 'authors')) {
    assert.equal(m.metadata[k]?.authorUid, author, `line ${s.line}: author of ${k}`)
  }
  for (const k of list(o.get('stamped'))) {
    assert.ok(m.metadata[k]?.updated > 0, `line ${s.line}: ${k} has no update time`)
  }
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
  if (ev.kind === 'presence' && kind === 'presence') {
    const i = p.interval
    return {
      type: p.eventType,
      channel: p.channelName,
      channel_type: p.channelType,
      publisher: p.publisher,
      states: stateSet(p.stateChanged),
      snapshot: set(p.snapshot.map((u) => u.userId)),
      joined: set(i?.join.users ?? []),
      left: set(i?.leave.users ?? []),
      timed_out: set(i?.timeout.users ?? []),
      changed: set((i?.userStateList ?? []).map((u) => u.userId)),
      total: String(i?.totalOccupancy ?? 0),
    }
  }
  if (ev.kind === 'storage' && kind === 'storage') {
    return {
      type: p.eventType,
      storage_type: p.storageType,
      channel_type: p.channelType,
      target: p.channelName,
      publisher: p.publisher,
      items: set(Object.entries(p.data.metadata).map(([k, d]) => `${k}:${d.value}`)),
      major: String(p.data.majorRevision),
    }
  }
  if (ev.kind === 'lock' && kind === 'lock') {
    return {
      type: p.eventType,
      channel: p.channelName,
      channel_type: p.channelType,
      lock: p.lockName,
      owner: p.owner,
      publisher: p.publisher,
      ttl: String(p.ttl),
      snapshot: set(p.snapshot.map((d) => `${d.lockName}:${d.owner}`)),
    }
  }
  return null
}

/** Fields whose expected value is a list, compared as a set. */
const LIST_FIELDS = new Set(['snapshot', 'joined', 'left', 'timed_out', 'changed', 'states', 'items'])

/**
 * NATS and CLUSTER_NODES `rtm2 serve --cluster` nodes, started by tests/conformance/cluster.py
 * with the scenario's `rtm2 serve` flags; the launcher stops them by pid when its stdin ends.
 */
class Cluster {
  /** `tcp://HOST:PORT` of each node, in the launcher's order. */
  endpoints = []
  #lines = new EventQueue()
  #stderr = ''

  static async start(args) {
    const cluster = new Cluster(args)
    try {
      await cluster.#ready()
    } catch (e) {
      await cluster.stop()
      throw e
    }
    return cluster
  }

  constructor(args) {
    const python = process.env.PYTHON || 'python3'
    this.child = spawn(python, [CLUSTER_PY, '--nodes', String(CLUSTER_NODES), '--', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, RTM2_BIN },
    })
    this.exited = new Promise((resolve) => this.child.once('close', resolve))
    this.child.once('error', (e) => this.#lines.push({ end: `cannot start ${python}: ${e.message}` }))
    let buf = ''
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (chunk) => {
      buf += chunk
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.#lines.push({ line: buf.slice(0, nl).trim() })
        buf = buf.slice(nl + 1)
      }
    })
    this.child.stdout.on('end', () => this.#lines.push({ end: 'the cluster launcher exited' }))
    this.child.stderr.setEncoding('utf8')
    this.child.stderr.on('data', (chunk) => {
      this.#stderr += chunk
    })
  }

  /** Reads `node ADDR` lines up to `ready` (bounded by CLUSTER_WAIT_MS). */
  async #ready() {
    const nodes = []
    const deadline = Date.now() + CLUSTER_WAIT_MS
    for (;;) {
      const item = await this.#lines.next(deadline)
      if (item === null) throw new Error(`the cluster was not ready within ${CLUSTER_WAIT_MS} ms: ${this.#stderr}`)
      if (item.end !== undefined) throw new Error(`${item.end} before it was ready: ${this.#stderr}`)
      if (item.line.startsWith('node ')) {
        nodes.push(`tcp://${item.line.slice('node '.length)}`)
      } else if (item.line === 'ready') {
        if (nodes.length !== CLUSTER_NODES) {
          throw new Error(`the cluster launcher named ${nodes.length} nodes: ${nodes}`)
        }
        this.endpoints = nodes
        return
      }
    }
  }

  /** Restarts every node on its port (same NATS); resolves once they serve logins again. */
  async restart() {
    this.child.stdin.write('restart\n')
    await this.#ready()
  }

  /** Ends the launcher's input (it stops the nodes and NATS by pid); SIGTERM if it hangs. */
  async stop() {
    this.child.stdin.end()
    try {
      await bounded(this.exited, 'the cluster launcher to stop')
    } catch {
      this.child.kill('SIGTERM')
      await bounded(this.exited, 'the cluster launcher to stop after SIGTERM')
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The runner

class Runner {
  server = null
  /** The cluster (cluster mode) and how many clients and ghosts were placed on its nodes. */
  cluster = null
  placed = 0
  /** The flags of `rtm2 serve` besides --listen, and whether the rate limits stay on. */
  args = []
  rateLimits = false
  cert = false
  /** name -> { rtm, events, user } */
  clients = new Map()
  /** name -> the promise of the operation begun with `start` */
  started = new Map()
  /** name -> the ghost (`startGhost`) */
  ghosts = new Map()

  constructor({ cluster = false } = {}) {
    this.clusterMode = cluster
  }

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
      else if (x.startsWith('ttl_unit_ms=')) this.args.push('--ttl-unit-ms', x.slice('ttl_unit_ms='.length))
      else if (x.startsWith('presence_announce_max=')) {
        this.args.push('--presence-announce-max', x.slice('presence_announce_max='.length))
      } else if (x.startsWith('presence_interval_ms=')) {
        this.args.push('--presence-interval-ms', x.slice('presence_interval_ms='.length))
      }
    }
    if (this.cert) {
      this.args.push('--app-id', APP_ID, '--app-certificate', CERT, '--token-notice-secs', String(notice))
    }
    if (this.clusterMode) {
      this.cluster = await Cluster.start([...(this.rateLimits ? [] : ['--no-rate-limits']), ...this.args])
    } else {
      this.server = await startServer(this.args, { rateLimits: this.rateLimits })
    }
  }

  /**
   * The endpoint of the next client or ghost: the server, or in a cluster node i mod 3 for the
   * i-th client or ghost (in the order of their steps).
   */
  nextEndpoint() {
    if (this.cluster !== null) {
      const endpoints = this.cluster.endpoints
      return endpoints[this.placed++ % endpoints.length]
    }
    return this.server.endpoint
  }

  /**
   * Kills the server and starts a new one with the same flags on the same port (in a cluster:
   * every node, same NATS).
   */
  async restart() {
    if (this.cluster !== null) return this.cluster.restart()
    const listen = this.server.endpoint.replace(/^tcp:\/\//, '')
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
    const rtm = new RTM(APP_ID, user, { endpoint: this.nextEndpoint(), reconnectInitialBackoffMs: 20 })
    const events = new EventQueue()
    const kinds = ['message', 'topic', 'presence', 'storage', 'lock', 'linkState', 'tokenPrivilegeWillExpire', 'overflow']
    for (const kind of kinds) {
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
          withMetadata: flag(o, 'with_metadata', false),
          withLock: flag(o, 'with_lock', false),
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
        await rtm.createStreamChannel(a(0)).join({
          token,
          withPresence: flag(o, 'with_presence', true),
          withMetadata: flag(o, 'with_metadata', false),
          withLock: flag(o, 'with_lock', false),
          beQuiet: flag(o, 'be_quiet', false),
        })
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
          const got = r.failedDetails.map((f) => `${f.user}:${f.errorCode}`)
          assert.deepEqual(r.failedUsers, r.failedDetails.map((f) => f.user), `line ${s.line}: failedUsers`)
          assert.deepEqual(got, list(o.get('failed')), `line ${s.line}: failed users`)
        }
        return
      }
      case 'unsubscribe_topic':
        return rtm.createStreamChannel(a(0)).unsubscribeTopic(a(1), { users: list(o.get('users')) })
      case 'subscribed_users': {
        const r = rtm.createStreamChannel(a(0)).getSubscribedUserList(a(1))
        if (o.has('users')) assert.deepEqual(r.users, list(o.get('users')), `line ${s.line}: subscribed users`)
        return
      }
      default:
        return this.serviceOp(s, rtm, a)
    }
  }

  /** The presence, storage and lock steps. */
  async serviceOp(s, rtm, a) {
    const o = s.opts
    const type = channelType(o)
    const { presence, storage, lock } = rtm
    switch (s.op) {
      case 'set_state':
        return presence.setState(a(0), type, pairs(o, 'states'))
      case 'get_state': {
        const r = await presence.getState(a(1), a(0), type)
        if (o.has('states')) assert.equal(stateSet(r.states), set(list(o.get('states'))), `line ${s.line}: state`)
        return
      }
      case 'remove_state':
        return presence.removeState(a(0), type, { states: list(o.get('keys')) })
      case 'who_now': {
        const r = await presence.whoNow(a(0), type, {
          includedUserId: flag(o, 'include_user_id', true),
          includedState: flag(o, 'include_state', false),
        })
        if (o.has('users')) assert.equal(set(r.occupants.map((u) => u.userId)), set(list(o.get('users'))), `line ${s.line}: users`)
        if (o.has('total')) assert.equal(String(r.totalOccupancy), o.get('total'), `line ${s.line}: total occupancy`)
        return
      }
      case 'where_now': {
        const r = await presence.whereNow(a(0))
        if (o.has('channels')) {
          const have = set(r.channels.map((c) => `${c.channelType}:${c.channelName}`))
          assert.equal(have, set(list(o.get('channels'))), `line ${s.line}: channels`)
        }
        return
      }
      case 'set_channel_metadata':
      case 'update_channel_metadata': {
        const method = s.op === 'set_channel_metadata' ? 'setChannelMetadata' : 'updateChannelMetadata'
        return checkWrite(s, await storage[method](a(0), type, metadataItems(o), metadataOptions(o)))
      }
      case 'remove_channel_metadata':
        return checkWrite(s, await storage.removeChannelMetadata(a(0), type, { ...metadataOptions(o), data: metadataItems(o) }))
      case 'get_channel_metadata':
        return checkMetadata(s, await storage.getChannelMetadata(a(0), type))
      case 'set_user_metadata':
      case 'update_user_metadata': {
        const method = s.op === 'set_user_metadata' ? 'setUserMetadata' : 'updateUserMetadata'
        return checkWrite(s, await storage[method](metadataItems(o), { ...metadataOptions(o), userId: a(0) }))
      }
      case 'remove_user_metadata':
        return checkWrite(s, await storage.removeUserMetadata({ ...metadataOptions(o), userId: a(0), data: metadataItems(o) }))
      case 'get_user_metadata':
        return checkMetadata(s, await storage.getUserMetadata({ userId: a(0) }))
      case 'subscribe_user_metadata':
        return storage.subscribeUserMetadata(a(0))
      case 'unsubscribe_user_metadata':
        return storage.unsubscribeUserMetadata(a(0))
      case 'set_lock':
        return lock.setLock(a(0), type, a(1), { ttl: o.has('ttl') ? Number(o.get('ttl')) : undefined })
      case 'remove_lock':
        return lock.removeLock(a(0), type, a(1))
      case 'acquire_lock':
        return lock.acquireLock(a(0), type, a(1), { retry: flag(o, 'retry', false) })
      case 'release_lock':
        return lock.releaseLock(a(0), type, a(1))
      case 'revoke_lock':
        return lock.revokeLock(a(0), type, a(1), a(2))
      case 'get_locks': {
        const r = await lock.getLock(a(0), type)
        if (o.has('locks')) {
          const have = set(r.lockDetails.map((d) => `${d.lockName}:${d.owner}`))
          assert.equal(have, set(list(o.get('locks'))), `line ${s.line}: locks`)
        }
        return
      }
      default:
        throw new Error(`line ${s.line}: unknown operation ${s.op}`)
    }
  }

  /** A user in another process (`rtm2 subscribe`, presence timeout 5 s), optionally holding a lock. */
  async ghost(w, lineNo) {
    const [, name, channel] = w
    if (!name || !channel) throw new Error(`line ${lineNo}: ghost needs a name and a channel`)
    const lock = w
      .slice(3)
      .find((x) => x.startsWith('lock='))
      ?.slice('lock='.length)
    try {
      this.ghosts.set(name, await startGhost(this.nextEndpoint(), name, channel, { lock, token: this.token('auto', name) }))
    } catch (e) {
      throw new Error(`line ${lineNo}: ${e.message}`)
    }
  }

  /** Kills a ghost's process (SIGKILL: no logout) and waits for it to end. */
  async kill(name, lineNo) {
    const ghost = this.ghosts.get(name)
    if (!ghost) throw new Error(`line ${lineNo}: no ghost ${name}`)
    this.ghosts.delete(name)
    await ghost.kill()
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
        if (got[k] !== (LIST_FIELDS.has(k) ? set(list(want)) : want)) {
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
    if (s.op === 'start') {
      // The operation's request is queued now (so it goes before later steps' requests); its
      // outcome is checked by `finish`.
      if (s.args.length === 0) throw new Error(`line ${s.line}: start needs an operation`)
      if (this.started.has(s.actor)) throw new Error(`line ${s.line}: ${s.actor} already started an operation`)
      const inner = { ...s, op: s.args[0], args: s.args.slice(1) }
      const p = this.op(inner)
      p.catch(() => {})
      this.started.set(s.actor, p)
      return
    }
    const what = `line ${s.line}: ${s.actor} ${s.op}`
    let error = null
    try {
      if (s.op === 'finish') {
        const p = this.started.get(s.actor)
        if (p === undefined) throw new Error(`line ${s.line}: ${s.actor} started nothing`)
        this.started.delete(s.actor)
        await bounded(p, `${what}: the started operation`)
      } else {
        await bounded(this.op(s), what)
      }
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

  /** Kills the ghosts, closes every client, then stops the server (bounded). */
  async close() {
    await Promise.allSettled([...this.ghosts.keys()].map((name) => this.kill(name, 'end')))
    const all = [...this.clients.values()].map((c) => c.rtm.close())
    this.clients.clear()
    await bounded(Promise.allSettled(all), 'the clients to close')
    await this.server?.stop()
    await this.cluster?.stop()
  }
}

async function runScenario(file, { cluster = false } = {}) {
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
        runner = new Runner({ cluster })
        await runner.start(w)
      } else if (w[0] === 'client') {
        need().addClient(w)
      } else if (w[0] === 'ghost') {
        await need().ghost(w, lineNo)
      } else if (w[0] === 'kill') {
        await need().kill(w[1], lineNo)
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

for (const name of scenarios) {
  let skip = false
  if (!clusterAvailable()) skip = 'no nats-server: set RTM2_NATS_SERVER or install it (scripts/test-cluster)'
  else if (CLUSTER_PENDING.has(name)) skip = `pending: ${CLUSTER_PENDING.get(name)}`
  test(`scenario ${name} [cluster]`, { skip }, async () => {
    await runScenario(path.join(SCENARIO_DIR, name), { cluster: true })
  })
}
