// The Consul store, over Consul's HTTP API (kv/consul-client.ts). Layout:
// kv/layout.ts, with Consul's key form (no leading slash):
// <prefix>/servers/<encodeURIComponent(address)>.
//
// - Reads: GET /v1/kv/<prefix>/servers/?recurse; X-Consul-Index is the
//   store position.
// - update(): one PUT /v1/txn per write: `cas` with the ModifyIndex read for
//   every key it sets (0: must not exist), `delete-cas` for every key it
//   removes. A write that creates or removes a key also sets the directory
//   key `<prefix>/servers/` (Consul's folder marker) with `cas`, so structural
//   changes are serialised as the etcd and ZooKeeper stores do it. Consul
//   answers a failed check with 409; the whole write is then retried.
// - watch(): blocking queries (?recurse&index=N&wait=...) as Consul documents
//   them: an unchanged index is a timeout, not a change; an index that went
//   backwards (a snapshot restore) resets to 0 and re-reads everything; after
//   a change, short blocking queries wait until the index stops moving (one
//   re-read per burst), which also rate-limits the loop.

import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { KvEntry, KvOp, KvRead } from './kv/layout.ts'
import { KvLayout } from './kv/layout.ts'
import type { KvBackend } from './kv/cas.ts'
import { casUpdate, stateOf } from './kv/cas.ts'
import type { CallContext, StoreHealth } from './kv/call.ts'
import { call, ConnectionHealth } from './kv/call.ts'
import type { TxnOp } from '../kv/consul-client.ts'
import { ConsulClient } from '../kv/consul-client.ts'
import type { KvStoreOptions, ResolvedKvOptions, TlsFiles } from './kv/options.ts'
import { resolveKvOptions } from './kv/options.ts'
import { Backoff, sleep, WatchReporter } from './kv/watch.ts'
import { AsyncLock } from './lock.ts'
import type { ConfigStore, Mutation, StoreState, WatchHandlers } from './store.ts'
import { ConsulShared } from './shared-consul.ts'
import type { SharedSpace } from './shared.ts'

export interface ConsulStoreOptions extends KvStoreOptions {
  token?: string | null
  /** HTTPS when non-null; empty fields use the system's CAs / no client certificate. */
  tls?: TlsFiles | null
}

/** Consul refuses transactions with more operations than this. */
const TXN_MAX_OPS = 64

export class ConsulStore implements ConfigStore {
  readonly kind = 'consul'
  readonly location: string
  readonly #o: ResolvedKvOptions
  readonly #layout: KvLayout
  readonly #ctx: CallContext
  readonly #http: ConsulClient
  readonly #lock = new AsyncLock()
  readonly #backend: KvBackend
  #last: { index: number; state: StoreState } | null = null
  #shared: ConsulShared | null = null

  constructor(opts: ConsulStoreOptions) {
    this.#o = resolveKvOptions(opts)
    this.location = opts.location
    // Consul keys have no leading slash.
    this.#layout = new KvLayout(opts.prefix.replace(/^\/+/, ''))
    this.#ctx = { kind: this.kind, location: this.location, timeoutMs: this.#o.timeoutMs, health: new ConnectionHealth() }
    const host = opts.hosts[0]
    if (host === undefined) throw new BalancerError(ErrorCode.Validation, 'consul: a host is required')
    this.#http = new ConsulClient({ host, token: opts.token ?? null, tls: opts.tls ?? null })
    this.#backend = {
      kind: this.kind,
      layout: this.#layout,
      // The directory marker takes one operation.
      maxOps: TXN_MAX_OPS - 1,
      read: () => call(this.#ctx, 'read', () => this.#list()),
      commit: (ops, read) => call(this.#ctx, 'write', () => this.#commit(ops, read)),
    }
  }

  load(): Promise<StoreState> {
    return this.#lock.run(async () => {
      const read = await this.#backend.read()
      const state = stateOf(this.#backend, read)
      this.#last = { index: Number(read.revision), state }
      return state
    })
  }

  update(mutate: Mutation): Promise<StoreState> {
    return this.#lock.run(async () => {
      const { state, position } = await casUpdate(this.#backend, mutate, this.#o)
      this.#last = { index: Number(position), state }
      return state
    })
  }

  watch(signal: AbortSignal, handlers: WatchHandlers): void {
    const reporter = new WatchReporter(this.#ctx, handlers, this.#last?.state ?? null)
    void this.#run(signal, reporter).catch((err: unknown) => reporter.unreachable(err))
  }

  shared(): SharedSpace {
    this.#shared ??= new ConsulShared(this.#http, this.#o.prefix, this.#ctx)
    return this.#shared
  }

  health(): StoreHealth {
    return this.#ctx.health.get()
  }

  async close(): Promise<void> {
    await this.#shared?.close()
    await this.#lock.run(() => undefined)
    this.#http.close()
  }

  async #run(signal: AbortSignal, reporter: WatchReporter): Promise<void> {
    const t = this.#o.timing
    const backoff = new Backoff(t.backoffMinMs, t.backoffMaxMs)
    let index = this.#last?.index ?? 0
    while (!signal.aborted) {
      try {
        if (index === 0) {
          index = await this.once(reporter)
          backoff.reset()
        }
        const started = Date.now()
        const seen = await this.#waitIndex(index, t.probeMs, signal)
        if (seen === null) return
        if (seen < index) {
          // The index went backwards (snapshot restore, new cluster): start over.
          index = 0
          continue
        }
        if (seen === index) {
          // The wait ran out without a change. Consul can also wake a query
          // early with nothing new: never spin.
          await sleep(Math.max(0, t.debounceMs - (Date.now() - started)), signal)
          continue
        }
        if (!(await this.#quiet(seen, signal))) return
        index = await this.once(reporter)
      } catch (err) {
        if (signal.aborted) return
        reporter.unreachable(err)
        index = 0
        await sleep(backoff.next(), signal)
      }
    }
  }

  /** One step of the watch: a full read reported to the owner. Resolves with its index. */
  once(reporter: WatchReporter): Promise<number> {
    return this.#lock.run(async () => {
      const read = await this.#backend.read()
      const index = Math.max(1, Number(read.revision))
      let state: StoreState
      try {
        state = stateOf(this.#backend, read)
      } catch (err) {
        reporter.invalid(err)
        return index
      }
      this.#last = { index, state }
      reporter.read(state)
      return index
    })
  }

  /** Waits until the index stays put for debounceMs (bounded by maxDebounceMs). False when aborted. */
  async #quiet(from: number, signal: AbortSignal): Promise<boolean> {
    const t = this.#o.timing
    const end = Date.now() + t.maxDebounceMs
    let index = from
    while (Date.now() < end) {
      const next = await this.#waitIndex(index, t.debounceMs, signal)
      if (next === null) return false
      if (next <= index) return true
      index = next
    }
    return true
  }

  /** A blocking query on the directory; resolves with the index it returned, null when aborted. */
  async #waitIndex(index: number, waitMs: number, signal: AbortSignal): Promise<number | null> {
    // Consul adds up to wait/16 of jitter to a blocking query.
    const timeoutMs = waitMs + Math.ceil(waitMs / 16) + this.#o.timeoutMs
    try {
      return await call({ ...this.#ctx, timeoutMs }, 'watch', async () => (await this.#http.kvList(this.#layout.dir, { index, waitMs }, timeoutMs, signal)).index)
    } catch (err) {
      if (signal.aborted) return null
      throw err
    }
  }

  /** GET ?recurse of the directory: entries, their ModifyIndex, the directory marker's. */
  async #list(): Promise<KvRead> {
    const { body: kvs, index } = await this.#http.kvList(this.#layout.dir, null, this.#o.timeoutMs)
    const entries: KvEntry[] = []
    let dirVersion: string | null = null
    for (const kv of kvs) {
      if (kv.Key === this.#layout.dir) {
        dirVersion = String(kv.ModifyIndex)
        continue
      }
      entries.push({ key: kv.Key, value: kv.Value ?? '', version: String(kv.ModifyIndex) })
    }
    return { entries, revision: String(index), dirVersion }
  }

  async #commit(ops: KvOp[], read: KvRead): Promise<string | null> {
    const txn: TxnOp[] = ops.map(
      (op): TxnOp =>
        op.op === 'delete'
          ? { KV: { Verb: 'delete-cas', Key: op.key, Index: Number(op.version) } }
          : { KV: { Verb: 'cas', Key: op.key, Value: Buffer.from(op.value).toString('base64'), Index: op.op === 'create' ? 0 : Number(op.version) } },
    )
    if (ops.some((op) => op.op !== 'update')) {
      txn.push({ KV: { Verb: 'cas', Key: this.#layout.dir, Value: '', Index: Number(read.dirVersion ?? '0') } })
    }
    const out = await this.#http.txn(txn, this.#o.timeoutMs)
    if (!out.ok) {
      if (isCasFailure(out.errors)) return null
      throw new Error(`HTTP 409 ${JSON.stringify(out.errors).slice(0, 200)}`)
    }
    let position = Number(read.revision)
    for (const r of out.results) position = Math.max(position, r.KV?.ModifyIndex ?? 0)
    return String(position)
  }
}

/** A 409 whose errors are all failed index checks (someone else wrote first), not a refusal. */
function isCasFailure(errors: Array<{ What?: string }>): boolean {
  return errors.length > 0 && errors.every((e) => /index is stale|exists|does not exist|modify index/i.test(e.What ?? ''))
}
