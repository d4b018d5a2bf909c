// The etcd store (v3 API over gRPC, the `etcd3` client). Layout: kv/layout.ts.
//
// - load(): one range read of <prefix>/servers/ (linearizable).
// - update(): one Txn per write: compares mod_revision of every key it updates
//   or deletes and create_revision == 0 of every key it creates; a write that
//   creates a key also requires that no key under the directory changed since
//   the read (a new server's address is checked against all the others, so a
//   concurrent create could make the pair invalid).
// - watch(): an etcd watch on the directory from the revision last read + 1,
//   so nothing between the read and the watch is missed; each burst of events
//   is one full re-read. A watch etcd cancels (its start revision was
//   compacted away) is rebuilt from a full re-read. The client library's own
//   retries are off: this loop reconnects, with backoff, and resynchronises.

import type { Etcd3, Watcher } from 'etcd3'
import { createEtcdClient } from '../kv/etcd-client.ts'
import type { KvEntry, KvOp, KvRead } from './kv/layout.ts'
import { KvLayout } from './kv/layout.ts'
import type { KvBackend } from './kv/cas.ts'
import { casUpdate, stateOf } from './kv/cas.ts'
import type { CallContext, StoreHealth } from './kv/call.ts'
import { call, ConnectionHealth } from './kv/call.ts'
import type { KvStoreOptions, ResolvedKvOptions, TlsFiles } from './kv/options.ts'
import { resolveKvOptions } from './kv/options.ts'
import { Backoff, ChangeBell, sleep, startProbe, WatchReporter } from './kv/watch.ts'
import { AsyncLock } from './lock.ts'
import type { ConfigStore, Mutation, StoreState, WatchHandlers } from './store.ts'
import { EtcdShared } from './shared-etcd.ts'
import type { SharedSpace } from './shared.ts'

export interface EtcdStoreOptions extends KvStoreOptions {
  user?: string | null
  password?: string | null
  /** TLS when non-null; empty fields use the system's CAs / no client certificate. */
  tls?: TlsFiles | null
}

export class EtcdStore implements ConfigStore {
  readonly kind = 'etcd'
  readonly location: string
  readonly #o: ResolvedKvOptions
  readonly #client: Etcd3
  readonly #layout: KvLayout
  readonly #ctx: CallContext
  readonly #lock = new AsyncLock()
  readonly #backend: KvBackend
  /** Store revision and state of the last read or write, where a watch starts. */
  #last: { revision: string; state: StoreState } | null = null
  #shared: EtcdShared | null = null

  constructor(opts: EtcdStoreOptions) {
    this.#o = resolveKvOptions(opts)
    this.location = opts.location
    this.#layout = new KvLayout(opts.prefix)
    this.#ctx = { kind: this.kind, location: this.location, timeoutMs: this.#o.timeoutMs, health: new ConnectionHealth() }
    this.#client = createEtcdClient(opts, this.#o.timeoutMs)
    this.#backend = { kind: this.kind, layout: this.#layout, maxOps: 127, read: () => this.#read(), commit: (ops, read) => this.#commit(ops, read) }
  }

  load(): Promise<StoreState> {
    return this.#lock.run(async () => {
      const read = await this.#read()
      const state = stateOf(this.#backend, read)
      this.#last = { revision: read.revision, state }
      return state
    })
  }

  update(mutate: Mutation): Promise<StoreState> {
    return this.#lock.run(async () => {
      const { state, position } = await casUpdate(this.#backend, mutate, this.#o)
      this.#last = { revision: position, state }
      return state
    })
  }

  watch(signal: AbortSignal, handlers: WatchHandlers): void {
    const reporter = new WatchReporter(this.#ctx, handlers, this.#last?.state ?? null)
    void this.#run(signal, reporter).catch((err: unknown) => reporter.unreachable(err))
  }

  shared(): SharedSpace {
    this.#shared ??= new EtcdShared(this.#client, this.#o.prefix, this.#ctx)
    return this.#shared
  }

  health(): StoreHealth {
    return this.#ctx.health.get()
  }

  async close(): Promise<void> {
    await this.#shared?.close()
    await this.#lock.run(() => undefined)
    this.#client.close()
  }

  /** The watch loop: follow the store from a known revision; on any failure report once, back off, resync. */
  async #run(signal: AbortSignal, reporter: WatchReporter): Promise<void> {
    const backoff = new Backoff(this.#o.timing.backoffMinMs, this.#o.timing.backoffMaxMs)
    let from = this.#last?.revision ?? null
    while (!signal.aborted) {
      try {
        if (from === null) {
          from = await this.once(reporter)
          backoff.reset()
        }
        const outcome = await this.#follow(signal, from, reporter)
        if (outcome === 'aborted') return
        from = null
      } catch (err) {
        if (signal.aborted) return
        from = null
        reporter.unreachable(err)
        await sleep(backoff.next(), signal)
      }
    }
  }

  /** One step of the watch: a full read reported to the owner. Resolves with the store revision read. */
  once(reporter: WatchReporter): Promise<string> {
    return this.#lock.run(async () => {
      const read = await this.#read()
      let state: StoreState
      try {
        state = stateOf(this.#backend, read)
      } catch (err) {
        reporter.invalid(err)
        return read.revision
      }
      this.#last = { revision: read.revision, state }
      reporter.read(state)
      return read.revision
    })
  }

  /** Watches from revision+1 and re-reads after each burst; returns 'resync' when etcd cancelled the watch. */
  async #follow(signal: AbortSignal, revision: string, reporter: WatchReporter): Promise<'resync' | 'aborted'> {
    const bell = new ChangeBell()
    const watcher: Watcher = this.#client
      .watch()
      .prefix(this.#layout.dir)
      .startRevision((BigInt(revision) + 1n).toString())
      .watcher()
    watcher.on('data', (res) => {
      if (res.events.length > 0) bell.ring()
    })
    watcher.on('disconnected', (err: Error) => bell.fail(err))
    // etcd cancels a watch whose start revision was compacted away (and on
    // other server-side cancels): rebuild it from a full read.
    watcher.on('error', () => bell.resync())
    const stopProbe = startProbe(
      this.#o.timing.probeMs,
      () => call(this.#ctx, 'probe', () => this.#client.getAll().prefix(this.#layout.dir).count()),
      (err) => bell.fail(err),
    )
    try {
      for (;;) {
        const r = await bell.next(signal, this.#o.timing.debounceMs, this.#o.timing.maxDebounceMs)
        if (r !== 'change') return r
        await this.once(reporter)
      }
    } finally {
      stopProbe()
      watcher.removeAllListeners()
      watcher.on('error', () => undefined)
      void watcher.cancel().catch(() => undefined)
    }
  }

  #read(): Promise<KvRead> {
    return call(this.#ctx, 'read', async () => {
      const res = await this.#client.getAll().prefix(this.#layout.dir).exec()
      const entries: KvEntry[] = res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), version: kv.mod_revision }))
      return { entries, revision: res.header.revision, dirVersion: null }
    })
  }

  #commit(ops: KvOp[], read: KvRead): Promise<string | null> {
    const compare = ops.map((op) =>
      op.op === 'create'
        ? { key: Buffer.from(op.key), target: 'Create' as const, result: 'Equal' as const, create_revision: '0' }
        : { key: Buffer.from(op.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: op.version },
    )
    if (ops.some((op) => op.op === 'create')) {
      const dir = Buffer.from(this.#layout.dir)
      compare.push({ key: dir, range_end: prefixEnd(dir), target: 'Mod', result: 'Less', mod_revision: (BigInt(read.revision) + 1n).toString() } as never)
    }
    const success = ops.map((op) => (op.op === 'delete' ? { request_delete_range: { key: Buffer.from(op.key) } } : { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value) } }))
    return call(this.#ctx, 'write', async () => {
      const res = await this.#client.kv.txn({ compare, success, failure: [] })
      return res.succeeded ? res.header.revision : null
    })
  }
}

/** The first key after every key that starts with prefix (etcd's range_end for a prefix). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0])
}
