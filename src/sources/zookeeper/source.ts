// ZooKeeper as a service registry (Apache Curator's layout, translate.ts),
// over the session the ZooKeeper store uses (kv/zk-session.ts), a session of
// its own. Watches on every level, re-armed by every read:
//
// - the service node: a child watch (an existence watch while it does not
//   exist, so a service registered later is seen);
// - every instance node: a data watch (a changed address or port; deletion).
//
// Reads are incremental: a child event lists the children again and reads
// only new ones; a data event reads only that instance. An expired or
// replaced session loses every watch: the next step reads everything again.
// Ephemeral instance nodes vanish with their owner's session: that is a
// child event like any deletion.

import type { Client, Event } from 'node-zookeeper-client'
import { Backoff, sleep } from '../../kv/backoff.ts'
import type { ZkSession, ZkWatcher } from '../../kv/zk-session.ts'
import { exists, getChildren, getData } from '../../kv/zk-session.ts'
import type { Problem } from '../../model/errors.ts'
import { mapLimit } from '../loop.ts'
import type { Instance, InstanceListener, RegistryDriver } from '../registry.ts'
import { instanceOf } from './translate.ts'

export interface ZooKeeperDriverOptions {
  session: ZkSession
  name: string
  /** Curator's base path, `/services`. */
  base: string
  /** Bound on every call. Default 5 s. */
  timeoutMs?: number
  /** How often a quiet session is checked. Default 5 s. */
  probeMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

interface Followed {
  path: string
  /** The client whose watches are armed; another client means read everything. */
  client: Client | null
  /** Instance node name -> what it holds (null: disabled in Curator). */
  nodes: Map<string, Instance | Problem | null>
  listDirty: boolean
  dataDirty: Set<string>
  trouble: Error | null
  wake: (() => void) | null
}

export class ZooKeeperDriver implements RegistryDriver {
  readonly #session: ZkSession
  readonly #name: string
  readonly #base: string
  readonly #timeoutMs: number
  readonly #probeMs: number
  readonly #min: number
  readonly #max: number
  /** Service node path -> its state. */
  readonly #followed = new Map<string, Followed>()
  readonly #offTrouble: () => void
  #probe: NodeJS.Timeout | null = null
  /** One watcher function for the driver's life: the client library keeps one registration per path and kind for it. */
  readonly #watcher: ZkWatcher = ((event: Event) => this.#onEvent(event)) as unknown as ZkWatcher

  constructor(o: ZooKeeperDriverOptions) {
    this.#session = o.session
    this.#name = o.name
    this.#base = o.base.replace(/\/+$/, '')
    this.#timeoutMs = o.timeoutMs ?? 5000
    this.#probeMs = o.probeMs ?? 5000
    this.#min = o.minBackoffMs ?? 100
    this.#max = o.maxBackoffMs ?? 5000
    this.#offTrouble = this.#session.onTrouble((err) => this.#trouble(err))
  }

  async follow(service: string, signal: AbortSignal, on: InstanceListener): Promise<void> {
    const st: Followed = { path: `${this.#base}/${service}`, client: null, nodes: new Map(), listDirty: true, dataDirty: new Set(), trouble: null, wake: null }
    this.#followed.set(st.path, st)
    this.#startProbe()
    const backoff = new Backoff(this.#min, this.#max)
    try {
      while (!signal.aborted) {
        try {
          const c = await this.#session.client(this.#timeoutMs)
          if (c !== st.client) {
            // A new session: no watch of ours is armed on it.
            st.client = c
            st.nodes.clear()
            st.listDirty = true
            st.dataDirty.clear()
          }
          st.trouble = null
          await this.#sync(c, st, service)
          on.set(...split(st.nodes))
          backoff.reset()
          await this.#idle(st, signal)
          if (st.trouble !== null) throw st.trouble
        } catch (err) {
          if (signal.aborted) return
          // Calls timed out on a connection that claims to be fine: it went silent.
          if (/no answer within/.test((err as Error).message) && this.#session.connected()) {
            this.#session.reset()
            this.#trouble(err as Error)
          }
          st.client = null
          on.error(err instanceof Error ? err : new Error(String(err)))
          await sleep(backoff.next(), signal)
        }
      }
    } finally {
      this.#followed.delete(st.path)
      if (this.#followed.size === 0) this.#stopProbe()
    }
  }

  close(): void {
    this.#offTrouble()
    this.#stopProbe()
    this.#session.close()
  }

  /** Reads what changed since the last step, arming the watches it reads through. */
  async #sync(c: Client, st: Followed, service: string): Promise<void> {
    for (;;) {
      let read: string[]
      if (st.listDirty) {
        st.listDirty = false
        const list = await this.#call(getChildren(c, st.path, this.#watcher))
        if (list === null) {
          // No service node (yet): watch for its creation.
          const stat = await this.#call(exists(c, st.path, this.#watcher))
          if (stat !== null) {
            st.listDirty = true
            continue
          }
          st.nodes.clear()
          st.dataDirty.clear()
          return
        }
        const names = new Set(list.children)
        for (const n of [...st.nodes.keys()]) if (!names.has(n)) st.nodes.delete(n)
        read = list.children.filter((n) => !st.nodes.has(n) || st.dataDirty.has(n))
      } else {
        read = [...st.dataDirty].filter((n) => st.nodes.has(n))
      }
      st.dataDirty.clear()
      const got = await mapLimit(read, 32, async (n) => ({ n, d: await this.#call(getData(c, `${st.path}/${n}`, this.#watcher)) }))
      for (const { n, d } of got) {
        // Removed between the listing and the read: the child watch has fired for it.
        if (d === null) st.nodes.delete(n)
        else st.nodes.set(n, instanceOf(this.#name, service, n, d.data))
      }
      if (!st.listDirty) return
    }
  }

  /** Waits for a watch event, trouble or the end. */
  async #idle(st: Followed, signal: AbortSignal): Promise<void> {
    if (st.listDirty || st.dataDirty.size > 0 || st.trouble !== null || signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        st.wake = null
        signal.removeEventListener('abort', done)
        resolve()
      }
      st.wake = done
      signal.addEventListener('abort', done, { once: true })
    })
  }

  #onEvent(event: Event): void {
    const path = event.getPath()
    const own = this.#followed.get(path)
    if (own !== undefined) {
      own.listDirty = true
      own.wake?.()
      return
    }
    const slash = path.lastIndexOf('/')
    const parent = this.#followed.get(path.slice(0, slash))
    if (parent === undefined) return
    parent.dataDirty.add(path.slice(slash + 1))
    parent.wake?.()
  }

  /** The session lost its connection or died: every followed service reads again on the next session. */
  #trouble(err: Error): void {
    for (const st of this.#followed.values()) {
      st.trouble ??= err
      st.wake?.()
    }
  }

  #call<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    return Promise.race([p, t]).finally(() => clearTimeout(timer))
  }

  #startProbe(): void {
    if (this.#probe !== null) return
    const tick = (): void => {
      if (!this.#session.connected()) {
        this.#probe = setTimeout(tick, this.#probeMs)
        return
      }
      this.#session
        .client(this.#timeoutMs)
        .then((c) => this.#call(exists(c, '/', null)))
        .then(
          () => undefined,
          (err: unknown) => {
            if (this.#session.connected()) this.#session.reset()
            this.#trouble(err instanceof Error ? err : new Error(String(err)))
          },
        )
        .finally(() => {
          if (this.#probe !== null) this.#probe = setTimeout(tick, this.#probeMs)
        })
    }
    this.#probe = setTimeout(tick, this.#probeMs)
  }

  #stopProbe(): void {
    if (this.#probe !== null) clearTimeout(this.#probe)
    this.#probe = null
  }
}

function split(nodes: ReadonlyMap<string, Instance | Problem | null>): [Instance[], Problem[]] {
  const instances: Instance[] = []
  const problems: Problem[] = []
  for (const r of nodes.values()) {
    if (r === null) continue
    if ('path' in r) problems.push(r)
    else instances.push(r)
  }
  return [instances, problems]
}
