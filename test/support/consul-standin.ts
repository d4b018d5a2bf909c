// A STAND-IN for Consul, for tests only: no Consul server can be installed on
// these machines. It is a real HTTP server (node:http on 127.0.0.1) that
// implements, following Consul's documented behaviour, the parts of the HTTP
// API the balancer's Consul store uses, and nothing else:
//
// - GET /v1/kv/<key>: JSON list of entries {LockIndex, Key, Flags, Value
//   (base64, null when empty), CreateIndex, ModifyIndex}; `?recurse` (every
//   key with that prefix), `?keys` (+ `separator`), `?raw`; 404 when nothing
//   matches; X-Consul-Index on every answer (for a prefix: the highest
//   ModifyIndex of its keys or of its deleted keys' tombstones, else the
//   table's index).
// - Blocking queries: `?index=N&wait=D` waits until the query's index is
//   above N or D (plus up to D/16 of jitter, as Consul adds) has passed.
// - PUT /v1/kv/<key> (raw body; `?cas=N`, 0 = create only; `?flags=`) and
//   DELETE /v1/kv/<key> (`?recurse`, `?cas=N`), answering true/false.
// - PUT /v1/txn with the KV verbs set, cas, get, get-tree, check-index,
//   check-not-exists, delete, delete-tree, delete-cas: all or nothing at one
//   index; a failed check is 409 {"Results":null,"Errors":[{OpIndex,What}]}
//   with Consul's messages; more than 64 operations is 413.
// - Sessions (what the balancer's leases use): PUT /v1/session/create
//   ({Name, TTL, Behavior, LockDelay} -> {ID}), /v1/session/renew/<id>
//   (404 once invalid), /v1/session/destroy/<id>; PUT /v1/kv/<key>?acquire=<id>
//   and ?release=<id> (true/false; an invalid session is a 500, as in
//   Consul). A session not renewed within its TTL is invalidated: its locks
//   are released, or its keys deleted with Behavior "delete".
// - ACLs: with a token configured, requests without it (X-Consul-Token or
//   ?token=) get 403.
// - Test controls: stop/start (data kept, as Consul's raft log keeps it),
//   freeze/resume (requests are held unanswered), snapshot/restore (the index
//   goes backwards, as after a raft snapshot restore; blocking queries wake),
//   wakeAll (blocking queries return early with an unchanged index).
// - The catalog and health endpoints a service registry is read through:
//   consul-standin-catalog.ts.

import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Entry, TxnOp } from './consul-standin-txn.ts'
import { MAX_TXN_OPS, runTxn, toJson } from './consul-standin-txn.ts'
import type { CatalogSnapshot } from './consul-standin-catalog.ts'
import { Catalog, parseFilter } from './consul-standin-catalog.ts'

export type { Entry }

export interface ConsulSnapshot {
  index: number
  entries: Entry[]
  tombstones: Array<[string, number]>
  catalog: CatalogSnapshot
}

const MAX_WAIT_MS = 600_000

export class ConsulStandIn {
  port = 0
  /** Every request seen, for tests that assert on the client's behaviour. */
  readonly requests: Array<{ method: string; url: string }> = []
  readonly #token: string | null
  #kv = new Map<string, Entry>()
  #tombstones = new Map<string, number>()
  readonly #catalog = new Catalog()
  /** Raft index: a running Consul has never committed nothing (bootstrap entries), so it starts above 0. */
  #index = 1
  #waiters = new Set<(all: boolean) => void>()
  #held: Array<() => void> = []
  #frozen = false
  readonly #sessions = new Map<string, { ttlMs: number; behavior: string; timer: NodeJS.Timeout | null }>()
  #sessionSeq = 0
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()

  constructor(opts: { token?: string } = {}) {
    this.#token = opts.token ?? null
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Listens on the port it had before (0 the first time: a free one). */
  async start(): Promise<void> {
    const server = createServer((req, res) => this.#onRequest(req, res))
    server.on('connection', (s) => {
      this.#sockets.add(s)
      s.on('close', () => this.#sockets.delete(s))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    const a = server.address()
    this.port = typeof a === 'object' && a !== null ? a.port : 0
    this.#server = server
  }

  /** Refuses connections from now on; every open one is cut. The data stays. */
  async stop(): Promise<void> {
    const s = this.#server
    this.#server = null
    this.#held = []
    this.#frozen = false
    if (s === null) return
    for (const sock of this.#sockets) sock.destroy()
    await new Promise<void>((r) => s.close(() => r()))
  }

  freeze(): void {
    this.#frozen = true
  }

  resume(): void {
    this.#frozen = false
    const held = this.#held
    this.#held = []
    for (const go of held) go()
  }

  snapshot(): ConsulSnapshot {
    return { index: this.#index, entries: [...this.#kv.values()].map((e) => ({ ...e })), tombstones: [...this.#tombstones], catalog: this.#catalog.snapshot() }
  }

  /** Puts the store back as it was at the snapshot, index included, and wakes every blocking query. */
  restore(s: ConsulSnapshot): void {
    this.#index = s.index
    this.#kv = new Map(s.entries.map((e) => [e.key, { ...e }]))
    this.#tombstones = new Map(s.tombstones)
    this.#catalog.restore(s.catalog)
    // Consul abandons the old state store: every blocking query returns now.
    this.#wake(true)
  }

  /** Ends every blocking query now with an unchanged index, as Consul may do (a wake-up with no change). */
  wakeAll(): void {
    this.#wake(true)
  }

  /** Writes as `consul kv put` would (a hand edit). */
  put(key: string, value: string): void {
    this.#write(() => this.#set(key, Buffer.from(value), 0, ++this.#index))
  }

  /** PUT /v1/catalog/register, as `consul services register` or an agent's anti-entropy would write it; throws on a 400. */
  register(body: unknown): void {
    this.#catalogWrite('register', body)
  }

  /** PUT /v1/catalog/deregister. */
  deregister(body: unknown): void {
    this.#catalogWrite('deregister', body)
  }

  /** Sets a check's status, as the agent running it reports it. */
  setCheck(node: string, checkId: string, status: 'passing' | 'warning' | 'critical', serviceId = ''): void {
    this.#catalogWrite('register', { Node: node, Address: this.nodeAddress(node), Check: { CheckID: checkId, Name: checkId, Status: status, ServiceID: serviceId } })
  }

  nodeAddress(node: string): string {
    const n = this.#catalog.snapshot().nodes.find((x) => x.Node === node)
    if (n === undefined) throw new Error(`stand-in: no node ${node}`)
    return n.Address
  }

  async close(): Promise<void> {
    await this.stop()
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const run = (): void => {
        try {
          this.#route(req, Buffer.concat(chunks), res)
        } catch (err) {
          send(res, 500, String(err), this.#index, 'text/plain')
        }
      }
      if (this.#frozen) this.#held.push(run)
      else run()
    })
  }

  #route(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://consul')
    this.requests.push({ method: req.method ?? '', url: req.url ?? '' })
    const q = url.searchParams
    if (this.#token !== null) {
      const given = req.headers['x-consul-token'] ?? q.get('token') ?? undefined
      if (given !== this.#token) return send(res, 403, given === undefined ? 'Permission denied' : 'ACL not found', this.#index, 'text/plain')
    }
    if (url.pathname === '/v1/txn' && req.method === 'PUT') return this.#txn(body, res)
    if (url.pathname.startsWith('/v1/session/') && req.method === 'PUT') return this.#session(url.pathname.slice('/v1/session/'.length), body, res)
    if ((url.pathname === '/v1/catalog/register' || url.pathname === '/v1/catalog/deregister') && req.method === 'PUT') {
      let parsed: unknown
      try {
        parsed = JSON.parse(body.toString('utf8'))
      } catch (err) {
        return send(res, 400, `Request decode failed: ${String(err)}`, this.#index, 'text/plain')
      }
      try {
        this.#catalogWrite(url.pathname.endsWith('/register') ? 'register' : 'deregister', parsed)
      } catch (err) {
        return send(res, 400, (err as Error).message, this.#index, 'text/plain')
      }
      return send(res, 200, 'true', this.#index)
    }
    if (url.pathname === '/v1/catalog/services' && req.method === 'GET') {
      const filter = q.get('filter')
      const match = filter === null ? null : parseFilter(filter)
      if (match !== null && 'error' in match) return send(res, 400, match.error, this.#index, 'text/plain')
      return this.#blocking(q, res, () => this.#catalog.services(match ?? undefined))
    }
    if (url.pathname.startsWith('/v1/health/service/') && req.method === 'GET') {
      const name = decodeURIComponent(url.pathname.slice('/v1/health/service/'.length))
      return this.#blocking(q, res, () => this.#catalog.health(name, q.has('passing') && q.get('passing') !== 'false', q.getAll('tag')))
    }
    if (!url.pathname.startsWith('/v1/kv/')) return send(res, 404, 'stand-in: not implemented', this.#index, 'text/plain')
    const key = decodeURIComponent(url.pathname.slice('/v1/kv/'.length))
    if (req.method === 'GET') return this.#get(key, q, res)
    if (req.method === 'PUT' && (q.has('acquire') || q.has('release'))) return this.#lock(key, q, body, res)
    if (req.method === 'PUT') {
      const cas = q.get('cas')
      let ok = false
      this.#write(() => {
        const cur = this.#kv.get(key)
        if (cas !== null && (cur?.modifyIndex ?? 0) !== Number(cas)) return
        this.#set(key, body.length === 0 ? null : body, Number(q.get('flags') ?? cur?.flags ?? 0), ++this.#index)
        ok = true
      })
      return send(res, 200, JSON.stringify(ok), this.#index)
    }
    if (req.method === 'DELETE') {
      const cas = q.get('cas')
      let ok = true
      this.#write(() => {
        if (q.has('recurse')) {
          const keys = [...this.#kv.keys()].filter((k) => k.startsWith(key))
          if (keys.length === 0) return
          const at = ++this.#index
          for (const k of keys) this.#delete(k, at)
          return
        }
        const cur = this.#kv.get(key)
        if (cas !== null && (cur?.modifyIndex ?? 0) !== Number(cas)) {
          ok = false
          return
        }
        if (cur !== undefined) this.#delete(key, ++this.#index)
      })
      return send(res, 200, JSON.stringify(ok), this.#index)
    }
    send(res, 405, 'method not allowed', this.#index, 'text/plain')
  }

  #session(path: string, body: Buffer, res: ServerResponse): void {
    const [verb, id = ''] = path.split('/')
    if (verb === 'create') {
      let spec: { TTL?: string; Behavior?: string } = {}
      try {
        spec = body.length === 0 ? {} : (JSON.parse(body.toString('utf8')) as typeof spec)
      } catch (err) {
        return send(res, 400, `Request decode failed: ${String(err)}`, this.#index, 'text/plain')
      }
      const ttlMs = parseWait(spec.TTL ?? '') ?? 0
      if (spec.TTL !== undefined && (ttlMs < 10_000 || ttlMs > 86_400_000)) return send(res, 400, `Invalid Session TTL '${ttlMs}', must be between [10s=24h0m0s]`, this.#index, 'text/plain')
      const sid = `00000000-0000-0000-0000-${String(++this.#sessionSeq).padStart(12, '0')}`
      this.#sessions.set(sid, { ttlMs, behavior: spec.Behavior ?? 'release', timer: null })
      this.#arm(sid)
      return send(res, 200, JSON.stringify({ ID: sid }), ++this.#index)
    }
    if (verb === 'renew') {
      if (!this.#sessions.has(id)) return send(res, 404, `Session id '${id}' not found`, this.#index, 'text/plain')
      this.#arm(id)
      return send(res, 200, JSON.stringify([{ ID: id }]), this.#index)
    }
    if (verb === 'destroy') {
      this.#invalidate(id)
      return send(res, 200, 'true', this.#index)
    }
    send(res, 404, 'stand-in: not implemented', this.#index, 'text/plain')
  }

  #arm(id: string): void {
    const s = this.#sessions.get(id)
    if (s === undefined || s.ttlMs === 0) return
    if (s.timer !== null) clearTimeout(s.timer)
    s.timer = setTimeout(() => this.#invalidate(id), s.ttlMs)
    s.timer.unref()
  }

  /** The session ends (destroyed, or its TTL ran out): its locks are released, or its keys deleted. */
  #invalidate(id: string): void {
    const s = this.#sessions.get(id)
    if (s === undefined) return
    if (s.timer !== null) clearTimeout(s.timer)
    this.#sessions.delete(id)
    this.#write(() => {
      for (const e of [...this.#kv.values()]) {
        if (e.session !== id) continue
        const at = ++this.#index
        if (s.behavior === 'delete') this.#delete(e.key, at)
        else {
          const { session: _gone, ...rest } = e
          this.#kv.set(e.key, { ...rest, modifyIndex: at })
        }
      }
    })
  }

  #lock(key: string, q: URLSearchParams, body: Buffer, res: ServerResponse): void {
    const id = q.get('acquire') ?? q.get('release') ?? ''
    if (!this.#sessions.has(id)) return send(res, 500, `invalid session "${id}"`, this.#index, 'text/plain')
    const cur = this.#kv.get(key)
    let ok = false
    this.#write(() => {
      if (q.has('acquire')) {
        if (cur?.session !== undefined && cur.session !== id) return
        const at = ++this.#index
        this.#set(key, body.length === 0 ? null : body, cur?.flags ?? 0, at)
        const e = this.#kv.get(key) as Entry
        this.#kv.set(key, { ...e, session: id, lockIndex: (cur?.lockIndex ?? 0) + (cur?.session === id ? 0 : 1) })
        ok = true
      } else {
        if (cur === undefined || cur.session !== id) return
        const { session: _drop, ...rest } = cur
        this.#kv.set(key, { ...rest, modifyIndex: ++this.#index })
        ok = true
      }
    })
    send(res, 200, JSON.stringify(ok), this.#index)
  }

  #get(key: string, q: URLSearchParams, res: ServerResponse): void {
    const recurse = q.has('recurse') || q.has('keys')
    const answer = (): void => {
      const { index, entries } = this.#query(key, recurse)
      if (entries.length === 0) return send(res, 404, '', index)
      if (q.has('raw') && !recurse) return send(res, 200, entries[0]?.value ?? Buffer.alloc(0), index, 'application/octet-stream')
      if (q.has('keys')) {
        const sep = q.get('separator') ?? ''
        const keys = entries.map((e) => {
          const i = sep === '' ? -1 : e.key.indexOf(sep, key.length)
          return i < 0 ? e.key : e.key.slice(0, i + sep.length)
        })
        return send(res, 200, JSON.stringify([...new Set(keys)]), index)
      }
      send(res, 200, JSON.stringify(entries.map(toJson)), index)
    }
    const min = Number(q.get('index') ?? '0')
    if (!(min > 0) || this.#query(key, recurse).index > min) return answer()
    const waitMs = Math.min(parseWait(q.get('wait')) ?? 300_000, MAX_WAIT_MS)
    const timeoutMs = waitMs + Math.random() * (waitMs / 16)
    const done = (): void => {
      clearTimeout(timer)
      this.#waiters.delete(check)
      res.off('close', done)
      if (res.writableEnded || res.destroyed) return
      if (this.#frozen) this.#held.push(answer)
      else answer()
    }
    const check = (restored = false): void => {
      if (restored || this.#query(key, recurse).index > min) done()
    }
    const timer = setTimeout(done, timeoutMs)
    this.#waiters.add(check)
    res.on('close', done)
  }

  /** A blocking JSON query on the catalog: answers at once unless ?index=N is given and the query's index is not above N. */
  #blocking(q: URLSearchParams, res: ServerResponse, query: () => { index: number; body: unknown }): void {
    const answer = (): void => {
      const r = query()
      send(res, 200, JSON.stringify(r.body), r.index)
    }
    const min = Number(q.get('index') ?? '0')
    if (!(min > 0) || query().index > min) return answer()
    const waitMs = Math.min(parseWait(q.get('wait')) ?? 300_000, MAX_WAIT_MS)
    const timeoutMs = waitMs + Math.random() * (waitMs / 16)
    const done = (): void => {
      clearTimeout(timer)
      this.#waiters.delete(check)
      res.off('close', done)
      if (res.writableEnded || res.destroyed) return
      if (this.#frozen) this.#held.push(answer)
      else answer()
    }
    const check = (restored = false): void => {
      if (restored || query().index > min) done()
    }
    const timer = setTimeout(done, timeoutMs)
    this.#waiters.add(check)
    res.on('close', done)
  }

  #catalogWrite(op: 'register' | 'deregister', body: unknown): void {
    const at = this.#index + 1
    const err = op === 'register' ? this.#catalog.register(body, at) : this.#catalog.deregister(body, at)
    if (err !== null) throw new Error(err)
    this.#write(() => {
      this.#index = at
    })
  }

  #query(key: string, recurse: boolean): { index: number; entries: Entry[] } {
    if (!recurse) {
      const e = this.#kv.get(key)
      return { index: e?.modifyIndex ?? this.#tombstones.get(key) ?? this.#index, entries: e === undefined ? [] : [e] }
    }
    const entries = [...this.#kv.values()].filter((e) => e.key.startsWith(key)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    let index = 0
    for (const e of entries) index = Math.max(index, e.modifyIndex)
    for (const [k, at] of this.#tombstones) if (k.startsWith(key)) index = Math.max(index, at)
    return { index: index === 0 ? this.#index : index, entries }
  }

  #txn(body: Buffer, res: ServerResponse): void {
    let ops: TxnOp[]
    try {
      ops = JSON.parse(body.toString('utf8')) as TxnOp[]
      if (!Array.isArray(ops)) throw new Error('not a list')
    } catch (err) {
      return send(res, 400, `Failed to parse body: ${String(err)}`, this.#index, 'text/plain')
    }
    if (ops.length > MAX_TXN_OPS) return send(res, 413, `Transaction contains too many operations (${ops.length} > ${MAX_TXN_OPS})`, this.#index, 'text/plain')
    const out = runTxn(this.#kv, this.#index + 1, ops)
    if (out.errors.length > 0) return send(res, 409, JSON.stringify({ Results: null, Errors: out.errors }), this.#index)
    if (out.writes) {
      this.#write(() => {
        this.#index += 1
        this.#kv = out.kv
        for (const k of out.deleted) this.#tombstones.set(k, this.#index)
      })
    }
    send(res, 200, JSON.stringify({ Results: out.results, Errors: null }), this.#index)
  }

  #set(key: string, value: Buffer | null, flags: number, at: number): void {
    const cur = this.#kv.get(key)
    this.#kv.set(key, { key, value, flags, createIndex: cur?.createIndex ?? at, modifyIndex: at })
    this.#tombstones.delete(key)
  }

  #delete(key: string, at: number): void {
    this.#kv.delete(key)
    this.#tombstones.set(key, at)
  }

  #write(fn: () => void): void {
    fn()
    this.#wake()
  }

  #wake(all = false): void {
    for (const check of [...this.#waiters]) check(all)
  }
}

/** A request URL is a blocking query (index > 0) on `path` (e.g. /v1/health/service/web), passing-only when asked. */
export function blockingOn(url: string, path: string, passing = false): boolean {
  const u = new URL(url, 'http://consul')
  return u.pathname === path && Number(u.searchParams.get('index') ?? 0) > 0 && (!passing || u.searchParams.has('passing'))
}

/** Errors go out as text/plain, as Consul's do (Go's http.Error); answers as JSON. */
function send(res: ServerResponse, status: number, body: string | Buffer, index: number, type = 'application/json'): void {
  res.writeHead(status, {
    'content-type': type,
    'x-consul-index': String(index),
    'x-consul-knownleader': 'true',
    'x-consul-lastcontact': '0',
  })
  res.end(body)
}

/** Go duration subset Consul accepts for `wait`: 10s, 250ms, 1m, 1m30s. */
function parseWait(v: string | null): number | null {
  if (v === null || v === '') return null
  let total = 0
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g
  let consumed = 0
  for (const m of v.matchAll(re)) {
    const n = Number(m[1])
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000
    consumed += m[0].length
  }
  return consumed === v.length ? total : null
}
