// The shared space of the etcd store (store/shared.ts): keys under the
// store's prefix, writes as transactions comparing mod_revision (or
// create_revision = 0 to create), a watch on a directory's prefix, and
// leases as etcd leases: the lease key is created only if absent, attached
// to a lease the client keeps alive; a holder that dies stops the
// keep-alives and etcd deletes the key when the TTL runs out.

import type { Etcd3, Watcher } from 'etcd3'
import { Backoff, sleep } from '../kv/backoff.ts'
import type { CallContext } from './kv/call.ts'
import { call } from './kv/call.ts'
import type { Lease, SharedItem, SharedSpace } from './shared.ts'
import { ANY_VERSION } from './shared.ts'

export class EtcdShared implements SharedSpace {
  readonly kind = 'etcd'
  readonly #client: Etcd3
  readonly #prefix: string
  readonly #ctx: CallContext
  /** Leases held: close() stops their keep-alives (they then expire, as a dead holder's do). */
  readonly #held = new Set<{ release(): void }>()

  constructor(client: Etcd3, prefix: string, ctx: CallContext) {
    this.#client = client
    this.#prefix = prefix
    this.#ctx = ctx
  }

  #key(key: string): string {
    return `${this.#prefix}/${key}`
  }

  #item(k: Buffer, v: Buffer, version: string): SharedItem {
    return { key: k.toString().slice(this.#prefix.length + 1), value: v.toString(), version }
  }

  list(dir: string): Promise<SharedItem[]> {
    const base = this.#key(dir.replace(/\/$/, '')) + '/'
    return call(this.#ctx, 'read', async () => {
      const res = await this.#client.getAll().prefix(base).exec()
      return res.kvs
        .filter((kv) => !kv.key.toString().slice(base.length).includes('/'))
        .map((kv) => this.#item(kv.key, kv.value, kv.mod_revision))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    })
  }

  get(key: string): Promise<SharedItem | null> {
    return call(this.#ctx, 'read', async () => {
      const res = await this.#client.kv.range({ key: Buffer.from(this.#key(key)) })
      const kv = res.kvs[0]
      return kv === undefined ? null : this.#item(kv.key, kv.value, kv.mod_revision)
    })
  }

  put(key: string, value: string, expect: string | null): Promise<string | null> {
    if (expect !== null && expect !== ANY_VERSION && !/^\d+$/.test(expect)) return Promise.resolve(null)
    const k = Buffer.from(this.#key(key))
    const compare =
      expect === ANY_VERSION
        ? []
        : expect === null
          ? [{ key: k, target: 'Create' as const, result: 'Equal' as const, create_revision: '0' }]
          : [{ key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expect }]
    return call(this.#ctx, 'write', async () => {
      const res = await this.#client.kv.txn({ compare, success: [{ request_put: { key: k, value: Buffer.from(value) } }], failure: [] })
      return res.succeeded ? res.header.revision : null
    })
  }

  delete(key: string, expect?: string): Promise<boolean> {
    if (expect !== undefined && !/^\d+$/.test(expect)) return Promise.resolve(false)
    const k = Buffer.from(this.#key(key))
    const compare =
      expect === undefined
        ? [{ key: k, target: 'Create' as const, result: 'Greater' as const, create_revision: '0' }]
        : [{ key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expect }]
    return call(this.#ctx, 'write', async () => {
      const res = await this.#client.kv.txn({ compare, success: [{ request_delete_range: { key: k } }], failure: [] })
      return res.succeeded
    })
  }

  watch(dir: string, signal: AbortSignal, onChange: () => void, onError: (err: Error) => void): Promise<void> {
    const base = this.#key(dir.replace(/\/$/, '')) + '/'
    let ready: () => void = () => undefined
    const established = new Promise<void>((resolve) => (ready = resolve))
    void (async () => {
      const backoff = new Backoff(100, 5000)
      let failing = false
      while (!signal.aborted) {
        let watcher: Watcher | null = null
        try {
          watcher = await this.#client.watch().prefix(base).create()
          ready()
          if (failing) {
            failing = false
            onChange() // whatever happened during the outage
          }
          backoff.reset()
          await new Promise<void>((resolve, reject) => {
            const w = watcher as Watcher
            let timer: NodeJS.Timeout | null = null
            w.on('data', (res) => {
              if (res.events.length === 0 || timer !== null) return
              timer = setTimeout(() => {
                timer = null
                onChange()
              }, 50)
            })
            w.on('disconnected', (err: Error) => reject(err))
            w.on('error', (err: Error) => reject(err))
            signal.addEventListener('abort', () => resolve(), { once: true })
          })
        } catch (err) {
          if (signal.aborted) break
          if (!failing) onError(err instanceof Error ? err : new Error(String(err)))
          failing = true
          await sleep(backoff.next(), signal)
        } finally {
          if (watcher !== null) {
            watcher.removeAllListeners()
            watcher.on('error', () => undefined)
            void watcher.cancel().catch(() => undefined)
          }
        }
      }
      ready()
    })()
    return established
  }

  async lease(name: string, ttlMs: number): Promise<Lease | null> {
    const lease = this.#client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: true })
    const ac = new AbortController()
    lease.on('lost', (err) => ac.abort(err))
    const k = Buffer.from(this.#key(`leases/${encodeURIComponent(name)}`))
    try {
      const id = await call(this.#ctx, 'lease', () => lease.grant())
      const res = await call(this.#ctx, 'lease', () =>
        this.#client.kv.txn({
          compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: '0' }],
          success: [{ request_put: { key: k, value: Buffer.from(JSON.stringify({ pid: process.pid })), lease: id } }],
          failure: [],
        }),
      )
      if (!res.succeeded) {
        await lease.revoke().catch(() => undefined)
        return null
      }
    } catch (err) {
      await lease.revoke().catch(() => undefined)
      throw err
    }
    this.#held.add(lease)
    return {
      lost: ac.signal,
      release: async () => {
        this.#held.delete(lease)
        await lease.revoke().catch(() => undefined)
        if (!ac.signal.aborted) ac.abort(new Error('released'))
      },
    }
  }

  /** Stops the keep-alives of the leases held (the client itself belongs to the store). */
  async close(): Promise<void> {
    for (const l of this.#held) l.release()
    this.#held.clear()
  }
}
