// The shared space of the Consul store (store/shared.ts), over Consul's HTTP
// API: keys under the store's prefix, writes with `?cas=` (0 to create),
// a watch as blocking queries on a directory, and leases as Consul
// sessions: a session with a TTL (renewed every third of it) acquires the
// lease key; a holder that dies stops renewing, Consul invalidates the
// session after its TTL and, with behavior "delete", removes the key.

import { Backoff, sleep } from '../kv/backoff.ts'
import type { ConsulClient, ConsulKv } from '../kv/consul-client.ts'
import type { CallContext } from './kv/call.ts'
import { call } from './kv/call.ts'
import type { Lease, SharedItem, SharedSpace } from './shared.ts'
import { ANY_VERSION } from './shared.ts'

export class ConsulShared implements SharedSpace {
  readonly kind = 'consul'
  readonly #http: ConsulClient
  /** Without a leading slash, as Consul keys are. */
  readonly #prefix: string
  readonly #ctx: CallContext
  /** Renewal timers of the leases held: stopped by close(), as when the process ends. */
  readonly #renewals = new Set<NodeJS.Timeout>()

  constructor(http: ConsulClient, prefix: string, ctx: CallContext) {
    this.#http = http
    this.#prefix = prefix.replace(/^\/+/, '').replace(/\/+$/, '')
    this.#ctx = ctx
  }

  #key(key: string): string {
    return `${this.#prefix}/${key}`
  }

  #item(kv: ConsulKv): SharedItem {
    return { key: kv.Key.slice(this.#prefix.length + 1), value: kv.Value ?? '', version: String(kv.ModifyIndex) }
  }

  async #list(dir: string, index: number, waitMs: number, signal?: AbortSignal): Promise<{ items: SharedItem[]; index: number }> {
    const base = `${this.#key(dir.replace(/\/$/, ''))}/`
    const timeoutMs = index > 0 ? waitMs + Math.ceil(waitMs / 16) + this.#ctx.timeoutMs : this.#ctx.timeoutMs
    const res = await this.#http.kvList(base, index > 0 ? { index, waitMs } : null, timeoutMs, signal)
    const items = res.body
      .filter((kv) => kv.Key.length > base.length && !kv.Key.slice(base.length).includes('/'))
      .map((kv) => this.#item(kv))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    return { items, index: res.index }
  }

  list(dir: string): Promise<SharedItem[]> {
    return call(this.#ctx, 'read', async () => (await this.#list(dir, 0, 0)).items)
  }

  get(key: string): Promise<SharedItem | null> {
    return call(this.#ctx, 'read', async () => {
      const kv = await this.#http.kvGet(this.#key(key), this.#ctx.timeoutMs)
      return kv === null ? null : this.#item(kv)
    })
  }

  put(key: string, value: string, expect: string | null): Promise<string | null> {
    if (expect !== null && expect !== ANY_VERSION && !/^\d+$/.test(expect)) return Promise.resolve(null)
    const check = expect === ANY_VERSION ? {} : { cas: expect === null ? 0 : Number(expect) }
    return call(this.#ctx, 'write', async () => {
      const res = await this.#http.kvSet(this.#key(key), value, check, this.#ctx.timeoutMs)
      if (!res.body) return null
      const kv = await this.#http.kvGet(this.#key(key), this.#ctx.timeoutMs)
      return kv === null ? String(res.index) : String(kv.ModifyIndex)
    })
  }

  delete(key: string, expect?: string): Promise<boolean> {
    if (expect !== undefined && !/^\d+$/.test(expect)) return Promise.resolve(false)
    return call(this.#ctx, 'write', async () => {
      if (expect === undefined && (await this.get(key)) === null) return false
      return this.#http.kvDelete(this.#key(key), expect === undefined ? undefined : Number(expect), this.#ctx.timeoutMs)
    })
  }

  watch(dir: string, signal: AbortSignal, onChange: () => void, onError: (err: Error) => void): Promise<void> {
    let ready: () => void = () => undefined
    const established = new Promise<void>((resolve) => (ready = resolve))
    void (async () => {
      const backoff = new Backoff(100, 5000)
      let index = 0
      let failing = false
      let last: string | null = null
      while (!signal.aborted) {
        try {
          const r = await this.#list(dir, index, 30_000, signal)
          if (r.index < index)
            index = 0 // went backwards: a restore; read everything again
          else index = Math.max(1, r.index)
          backoff.reset()
          const sig = r.items.map((i) => `${i.key}=${i.version}`).join('\n')
          if (last === null) {
            last = sig
            ready()
          } else if (sig !== last || failing) {
            last = sig
            failing = false
            onChange()
          }
          // Never spin on a wake-up that brought nothing.
          await sleep(50, signal)
        } catch (err) {
          if (signal.aborted) return
          if (!failing) onError(err instanceof Error ? err : new Error(String(err)))
          failing = true
          index = 0
          await sleep(backoff.next(), signal)
        }
      }
      ready()
    })()
    return established
  }

  async lease(name: string, ttlMs: number): Promise<Lease | null> {
    const ttl = Math.max(10, Math.ceil(ttlMs / 1000))
    const id = await call(this.#ctx, 'lease', () => this.#http.sessionCreate({ name: `balancer lease ${name}`, ttl: `${ttl}s`, behavior: 'delete', lockdelay: '0s' }, this.#ctx.timeoutMs))
    const destroy = (): Promise<unknown> => this.#http.sessionDestroy(id, this.#ctx.timeoutMs).catch(() => undefined)
    const key = this.#key(`leases/${encodeURIComponent(name)}`)
    let acquired: boolean
    try {
      const res = await call(this.#ctx, 'lease', () => this.#http.kvSet(key, JSON.stringify({ pid: process.pid }), { acquire: id }, this.#ctx.timeoutMs))
      acquired = res.body
    } catch (err) {
      await destroy()
      throw err
    }
    if (!acquired) {
      await destroy()
      return null
    }
    const ac = new AbortController()
    const renew = setInterval(
      () => {
        void this.#http.sessionRenew(id, this.#ctx.timeoutMs).then(
          (alive) => {
            if (!alive) {
              clearInterval(renew)
              ac.abort(new Error('Consul session invalidated'))
            }
          },
          () => undefined, // a missed renewal: the TTL covers two more
        )
      },
      Math.max(100, Math.floor((ttl * 1000) / 3)),
    )
    renew.unref()
    this.#renewals.add(renew)
    return {
      lost: ac.signal,
      release: async () => {
        clearInterval(renew)
        this.#renewals.delete(renew)
        await this.#http.kvSet(key, '', { release: id }, this.#ctx.timeoutMs).catch(() => undefined)
        await destroy()
        if (!ac.signal.aborted) ac.abort(new Error('released'))
      },
    }
  }

  /** Stops renewing the sessions held (Consul invalidates them after their TTL); the HTTP client belongs to the store. */
  async close(): Promise<void> {
    for (const t of this.#renewals) clearInterval(t)
    this.#renewals.clear()
  }
}
