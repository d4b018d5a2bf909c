// The ZooKeeper store (node-zookeeper-client, pure JavaScript). Layout:
// kv/layout.ts, as znodes: <path>/servers is the directory node and each
// server is one child, <path>/servers/<encodeURIComponent(address)>.
//
// - Reads: getChildren of the directory, then getData of every child. Within
//   one session ZooKeeper gives read-your-writes, and this store's writes and
//   reads share its session.
// - update(): one multi() per write, with the data version read for every
//   child it sets or removes (create fails if the child exists). A write that
//   creates or removes a child also sets the directory node's data with its
//   version, so structural changes are serialised: two servers created at
//   once cannot both pass validation against a list that lacked the other.
// - watch(): every read the watcher makes arms ZooKeeper watches: a child
//   watch on the directory (an existence watch while it does not exist) and a
//   data watch on every child. Any of them firing rings one bell; after the
//   burst the tree is read again, which re-arms every watch. A new session
//   (after expiry, or after a silent connection was abandoned) starts with a
//   full read, so nothing that happened in between is missed.
// - No TLS: the client library has none (see docs/stores.md).

import type { Client } from 'node-zookeeper-client'
import { CreateMode } from 'node-zookeeper-client'
import type { KvEntry, KvOp, KvRead } from './kv/layout.ts'
import { KvLayout } from './kv/layout.ts'
import type { KvBackend } from './kv/cas.ts'
import { casUpdate, stateOf } from './kv/cas.ts'
import type { CallContext, StoreHealth } from './kv/call.ts'
import { call, ConnectionHealth } from './kv/call.ts'
import type { KvStoreOptions, ResolvedKvOptions } from './kv/options.ts'
import { hostPortText, resolveKvOptions } from './kv/options.ts'
import { Backoff, ChangeBell, sleep, startProbe, WatchReporter } from './kv/watch.ts'
import { AsyncLock } from './lock.ts'
import type { ConfigStore, Mutation, StoreState, WatchHandlers } from './store.ts'
import { ZkShared } from './shared-zk.ts'
import type { SharedSpace } from './shared.ts'
import type { ZkWatcher } from '../kv/zk-session.ts'
import { checked, commit, exists, getChildren, getData, mkdirp, ZkSession, zxid } from '../kv/zk-session.ts'

export interface ZooKeeperStoreOptions extends KvStoreOptions {
  /** `digest:user:password` style pairs: scheme, then the credentials. */
  auth?: Array<{ scheme: string; credentials: string }>
  /** Session timeout asked of the server (it clamps it). Default 10000 ms. */
  sessionTimeoutMs?: number
}

export class ZooKeeperStore implements ConfigStore {
  readonly kind = 'zookeeper'
  readonly location: string
  readonly #o: ResolvedKvOptions
  readonly #layout: KvLayout
  /** The directory znode: the layout's dir without its trailing slash. */
  readonly #node: string
  readonly #ctx: CallContext
  readonly #lock = new AsyncLock()
  readonly #session: ZkSession
  readonly #backend: KvBackend
  #last: StoreState | null = null
  #shared: ZkShared | null = null
  #bell: ChangeBell | null = null
  /** One watcher function for the store's life: the client library keeps one registration per path for it. */
  readonly #ring: ZkWatcher = () => this.#bell?.ring()

  constructor(opts: ZooKeeperStoreOptions) {
    this.#o = resolveKvOptions(opts)
    this.location = opts.location
    this.#layout = new KvLayout(opts.prefix)
    this.#node = this.#layout.dir.slice(0, -1)
    this.#ctx = { kind: this.kind, location: this.location, timeoutMs: this.#o.timeoutMs, health: new ConnectionHealth() }
    this.#session = new ZkSession({
      connect: opts.hosts.map(hostPortText).join(','),
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 10_000,
      auth: (opts.auth ?? []).map((a) => ({ scheme: a.scheme, auth: Buffer.from(a.credentials) })),
    })
    this.#backend = {
      kind: this.kind,
      layout: this.#layout,
      maxOps: 1000,
      read: () => this.#call('read', (c) => this.#readTree(c, null)),
      commit: (ops, read) => this.#call('write', (c) => this.#commit(c, ops, read)),
    }
  }

  load(): Promise<StoreState> {
    return this.#lock.run(async () => {
      this.#last = stateOf(this.#backend, await this.#backend.read())
      return this.#last
    })
  }

  update(mutate: Mutation): Promise<StoreState> {
    return this.#lock.run(async () => {
      this.#last = (await casUpdate(this.#backend, mutate, this.#o)).state
      return this.#last
    })
  }

  watch(signal: AbortSignal, handlers: WatchHandlers): void {
    const reporter = new WatchReporter(this.#ctx, handlers, this.#last)
    void this.#run(signal, reporter).catch((err: unknown) => reporter.unreachable(err))
  }

  shared(): SharedSpace {
    this.#shared ??= new ZkShared(this.#session, this.#o.prefix, this.#ctx)
    return this.#shared
  }

  health(): StoreHealth {
    return this.#ctx.health.get()
  }

  async close(): Promise<void> {
    await this.#shared?.close()
    await this.#lock.run(() => undefined)
    this.#session.close()
  }

  async #run(signal: AbortSignal, reporter: WatchReporter): Promise<void> {
    const backoff = new Backoff(this.#o.timing.backoffMinMs, this.#o.timing.backoffMaxMs)
    while (!signal.aborted) {
      try {
        await this.#follow(signal, reporter, () => backoff.reset())
        return
      } catch (err) {
        if (signal.aborted) return
        reporter.unreachable(err)
        // Calls timed out on a connection that claims to be fine: it went
        // silent, and the client library would wait on it forever.
        if (this.#session.connected()) this.#session.reset()
        await sleep(backoff.next(), signal)
      }
    }
  }

  /** Reads (arming watches) after every burst of watch events, until aborted or the session is in trouble. */
  async #follow(signal: AbortSignal, reporter: WatchReporter, synced: () => void): Promise<void> {
    const bell = new ChangeBell()
    this.#bell = bell
    const off = this.#session.onTrouble((err) => bell.fail(err))
    const stopProbe = startProbe(
      this.#o.timing.probeMs,
      () => this.#call('probe', (c) => exists(c, '/', null)),
      (err) => bell.fail(err),
    )
    try {
      await this.once(reporter)
      synced()
      for (;;) {
        const r = await bell.next(signal, this.#o.timing.debounceMs, this.#o.timing.maxDebounceMs)
        if (r === 'aborted') return
        await this.once(reporter)
      }
    } finally {
      off()
      stopProbe()
      if (this.#bell === bell) this.#bell = null
    }
  }

  /** One step of the watch: read the tree arming every watch, and report it. */
  once(reporter: WatchReporter): Promise<void> {
    return this.#lock.run(async () => {
      const read = await this.#call('read', (c) => this.#readTree(c, this.#ring))
      let state: StoreState
      try {
        state = stateOf(this.#backend, read)
      } catch (err) {
        reporter.invalid(err)
        return
      }
      this.#last = state
      reporter.read(state)
    })
  }

  #call<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return call(this.#ctx, what, async () => fn(await this.#session.client(this.#o.timeoutMs)))
  }

  async #readTree(c: Client, watcher: ZkWatcher | null): Promise<KvRead> {
    const dir = await getChildren(c, this.#node, watcher)
    if (dir === null) {
      // No directory yet: an empty config, and (when watching) a watch for its creation.
      const stat = await exists(c, this.#node, watcher)
      if (stat !== null) return this.#readTree(c, watcher)
      return { entries: [], revision: '0', dirVersion: null }
    }
    let position = zxid(dir.stat.pzxid)
    const entries: KvEntry[] = []
    const nodes = await Promise.all(dir.children.map((name) => getData(c, `${this.#node}/${name}`, watcher).then((d) => ({ name, d }))))
    for (const { name, d } of nodes) {
      // Removed between the listing and the read: the child watch has fired for it.
      if (d === null) continue
      const m = zxid(d.stat.mzxid)
      if (m > position) position = m
      entries.push({ key: `${this.#node}/${name}`, value: d.data.toString('utf8'), version: String(d.stat.version) })
    }
    return { entries, revision: position.toString(), dirVersion: String(dir.stat.version) }
  }

  async #commit(c: Client, ops: KvOp[], read: KvRead): Promise<string | null> {
    if (read.dirVersion === null) await mkdirp(c, this.#node, this.#session.acls)
    const tx = c.transaction()
    let structural = false
    for (const op of ops) {
      if (op.op === 'create') {
        tx.create(op.key, Buffer.from(op.value), this.#session.acls, CreateMode.PERSISTENT)
        structural = true
      } else if (op.op === 'update') {
        checked(tx, 'setData', op.key, Number(op.version), Buffer.from(op.value))
      } else {
        checked(tx, 'remove', op.key, Number(op.version))
        structural = true
      }
    }
    // A directory created just now by mkdirp (or by a concurrent writer) has version 0.
    if (structural) checked(tx, 'setData', this.#node, Number(read.dirVersion ?? '0'))
    const results = await commit(tx)
    if (results === null) return null
    let position = 0n
    for (const r of results) {
      const m = zxid(r.stat?.mzxid)
      if (m > position) position = m
    }
    return position.toString()
  }
}
