// The shared space of the ZooKeeper store (store/shared.ts): znodes under
// the store's path, writes with the data version read (create fails when
// the node exists), a watch re-armed by every read of a directory (a child
// watch on it, a data watch on each child), and leases as ephemeral znodes:
// ZooKeeper deletes one when its session ends, so a holder that dies loses
// it once its session times out. A lease is given up as soon as the
// session is in trouble (connection lost, session expired): the work it
// guards is safe to redo, two holders at once are not.

import type { Client } from 'node-zookeeper-client'
import { CreateMode, Exception } from 'node-zookeeper-client'
import { Backoff, sleep } from '../kv/backoff.ts'
import type { ZkSession, ZkWatcher } from '../kv/zk-session.ts'
import { exists, getChildren, getData, mkdirp } from '../kv/zk-session.ts'
import type { CallContext } from './kv/call.ts'
import { call } from './kv/call.ts'
import { ChangeBell } from './kv/watch.ts'
import type { Lease, SharedItem, SharedSpace } from './shared.ts'
import { ANY_VERSION } from './shared.ts'

function code(err: unknown): number | null {
  return err instanceof Exception ? err.getCode() : null
}

export class ZkShared implements SharedSpace {
  readonly kind = 'zookeeper'
  readonly #session: ZkSession
  /** The store's path, without a trailing slash. */
  readonly #root: string
  readonly #ctx: CallContext

  constructor(session: ZkSession, root: string, ctx: CallContext) {
    this.#session = session
    this.#root = root.replace(/\/+$/, '')
    this.#ctx = ctx
  }

  #path(key: string): string {
    return `${this.#root}/${key}`
  }

  #call<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return call(this.#ctx, what, async () => fn(await this.#session.client(this.#ctx.timeoutMs)))
  }

  async #read(c: Client, dir: string, watcher: ZkWatcher | null): Promise<SharedItem[]> {
    const d = this.#path(dir.replace(/\/$/, ''))
    const listing = await getChildren(c, d, watcher)
    if (listing === null) {
      if (watcher !== null) {
        const stat = await exists(c, d, watcher)
        if (stat !== null) return this.#read(c, dir, watcher)
      }
      return []
    }
    const items = await Promise.all(
      listing.children.map(async (name) => {
        const data = await getData(c, `${d}/${name}`, watcher)
        return data === null ? null : { key: `${dir.replace(/\/$/, '')}/${name}`, value: data.data.toString('utf8'), version: String(data.stat.version) }
      }),
    )
    return items.filter((x): x is SharedItem => x !== null).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  list(dir: string): Promise<SharedItem[]> {
    return this.#call('read', (c) => this.#read(c, dir, null))
  }

  get(key: string): Promise<SharedItem | null> {
    return this.#call('read', async (c) => {
      const d = await getData(c, this.#path(key), null)
      return d === null ? null : { key, value: d.data.toString('utf8'), version: String(d.stat.version) }
    })
  }

  put(key: string, value: string, expect: string | null): Promise<string | null> {
    if (expect !== null && expect !== ANY_VERSION && !/^\d+$/.test(expect)) return Promise.resolve(null)
    const path = this.#path(key)
    const data = Buffer.from(value)
    return this.#call('write', async (c) => {
      if (expect === null || expect === ANY_VERSION) {
        await mkdirp(c, path.slice(0, path.lastIndexOf('/')), this.#session.acls)
        const created = await new Promise<boolean>((resolve, reject) =>
          c.create(path, data, this.#session.acls, CreateMode.PERSISTENT, (err) => {
            if (err === null || err === undefined) resolve(true)
            else if (code(err) === Exception.NODE_EXISTS) resolve(false)
            else reject(err)
          }),
        )
        if (created) return '0'
        if (expect === null) return null
      }
      return new Promise<string | null>((resolve, reject) =>
        c.setData(path, data, expect === ANY_VERSION || expect === null ? -1 : Number(expect), (err, stat) => {
          if (err === null || err === undefined) resolve(String(stat.version))
          else if (code(err) === Exception.BAD_VERSION || code(err) === Exception.NO_NODE) resolve(null)
          else reject(err)
        }),
      )
    })
  }

  delete(key: string, expect?: string): Promise<boolean> {
    if (expect !== undefined && !/^\d+$/.test(expect)) return Promise.resolve(false)
    return this.#call(
      'write',
      (c) =>
        new Promise<boolean>((resolve, reject) =>
          c.remove(this.#path(key), expect === undefined ? -1 : Number(expect), (err) => {
            if (err === null || err === undefined) resolve(true)
            else if (code(err) === Exception.BAD_VERSION || code(err) === Exception.NO_NODE) resolve(false)
            else reject(err)
          }),
        ),
    )
  }

  watch(dir: string, signal: AbortSignal, onChange: () => void, onError: (err: Error) => void): Promise<void> {
    let ready: () => void = () => undefined
    const established = new Promise<void>((resolve) => (ready = resolve))
    void (async () => {
      const backoff = new Backoff(100, 5000)
      let failing = false
      while (!signal.aborted) {
        const bell = new ChangeBell()
        const off = this.#session.onTrouble((err) => bell.fail(err))
        try {
          await this.#call('watch', (c) => this.#read(c, dir, bell.ring))
          ready()
          if (failing) onChange()
          failing = false
          backoff.reset()
          for (;;) {
            const r = await bell.next(signal, 50, 1000)
            if (r === 'aborted') return
            await this.#call('watch', (c) => this.#read(c, dir, bell.ring))
            onChange()
          }
        } catch (err) {
          if (signal.aborted) return
          if (!failing) onError(err instanceof Error ? err : new Error(String(err)))
          failing = true
          await sleep(backoff.next(), signal)
        } finally {
          off()
        }
      }
      ready()
    })()
    return established
  }

  async lease(name: string, _ttlMs: number): Promise<Lease | null> {
    const path = this.#path(`leases/${encodeURIComponent(name)}`)
    const ac = new AbortController()
    const created = await this.#call('lease', async (c) => {
      await mkdirp(c, path.slice(0, path.lastIndexOf('/')), this.#session.acls)
      return new Promise<boolean>((resolve, reject) =>
        c.create(path, Buffer.from(JSON.stringify({ pid: process.pid })), this.#session.acls, CreateMode.EPHEMERAL, (err) => {
          if (err === null || err === undefined) resolve(true)
          else if (code(err) === Exception.NODE_EXISTS) resolve(false)
          else reject(err)
        }),
      )
    })
    if (!created) return null
    const off = this.#session.onTrouble((err) => ac.abort(err))
    return {
      lost: ac.signal,
      release: async () => {
        off()
        await this.delete(`leases/${encodeURIComponent(name)}`).catch(() => false)
        if (!ac.signal.aborted) ac.abort(new Error('released'))
      },
    }
  }

  async close(): Promise<void> {
    // The session belongs to the store, which closes it.
  }
}
