// etcd as a service registry (the registrator layout, translate.ts), over the
// etcd3 client as the store sets it up (kv/etcd-client.ts). Per followed
// service: one range read of `<prefix>/<service>/`, then one etcd watch on
// that prefix from the read's revision + 1, so nothing in between is missed;
// puts and deletes are applied as they come (a key whose lease expires is a
// delete). A broken watch (the server gone, the start revision compacted
// away) ends the step: report, back off, read again, watch again.

import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import { Backoff, sleep } from '../../kv/backoff.ts'
import type { Problem } from '../../model/errors.ts'
import type { Instance, InstanceListener, RegistryDriver } from '../registry.ts'
import { instanceOf } from './translate.ts'

export interface EtcdDriverOptions {
  client: Etcd3
  name: string
  /** `/services`: the layout's root. */
  prefix: string
  /** Bound on establishing a watch. Default 5 s. */
  timeoutMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class EtcdDriver implements RegistryDriver {
  readonly #client: Etcd3
  readonly #name: string
  readonly #prefix: string
  readonly #min: number
  readonly #max: number
  readonly #timeoutMs: number

  constructor(o: EtcdDriverOptions) {
    this.#client = o.client
    this.#name = o.name
    this.#prefix = o.prefix.replace(/\/+$/, '')
    this.#min = o.minBackoffMs ?? 100
    this.#max = o.maxBackoffMs ?? 5000
    this.#timeoutMs = o.timeoutMs ?? 5000
  }

  async follow(service: string, signal: AbortSignal, on: InstanceListener): Promise<void> {
    const backoff = new Backoff(this.#min, this.#max)
    const dir = `${this.#prefix}/${service}/`
    while (!signal.aborted) {
      try {
        await this.#step(service, dir, signal, on, () => backoff.reset())
      } catch (err) {
        if (signal.aborted) return
        on.error(err instanceof Error ? err : new Error(String(err)))
        await sleep(backoff.next(), signal)
      }
    }
  }

  close(): void {
    this.#client.close()
  }

  /** Read, then watch from the next revision until the watch breaks (throws) or the signal aborts. */
  async #step(service: string, dir: string, signal: AbortSignal, on: InstanceListener, synced: () => void): Promise<void> {
    const res = await this.#client.getAll().prefix(dir).exec()
    const byKey = new Map<string, Instance | Problem>()
    const put = (kv: IKeyValue): void => {
      const key = kv.key.toString()
      byKey.set(key, instanceOf(this.#name, service, key.slice(dir.length), kv.value.toString()))
    }
    for (const kv of res.kvs) put(kv)
    let queued = false
    const emit = (): void => {
      queued = false
      const instances: Instance[] = []
      const problems: Problem[] = []
      for (const r of byKey.values()) {
        if ('path' in r) problems.push(r)
        else instances.push(r)
      }
      on.set(instances, problems)
    }
    // A burst of events in one turn (a lease revoking many keys) is one set.
    const later = (): void => {
      if (queued) return
      queued = true
      setImmediate(emit)
    }
    emit()
    synced()
    const creating = this.#client
      .watch()
      .prefix(dir)
      .startRevision((BigInt(res.header.revision) + 1n).toString())
      .create()
    let watcher: Watcher
    try {
      watcher = await withTimeout(creating, this.#timeoutMs, 'watch not established')
    } catch (err) {
      // It may still be established later: cancel it then.
      creating.then(
        (w) => void w.cancel().catch(() => undefined),
        () => undefined,
      )
      throw err
    }
    try {
      await new Promise<void>((resolve, reject) => {
        watcher.on('put', (kv) => {
          put(kv)
          later()
        })
        watcher.on('delete', (kv) => {
          if (byKey.delete(kv.key.toString())) later()
        })
        watcher.on('disconnected', (err: Error) => reject(err))
        // etcd cancelled the watch (its start revision was compacted away, ...): read again.
        watcher.on('error', (err: Error) => reject(err))
        if (signal.aborted) resolve()
        else signal.addEventListener('abort', () => resolve(), { once: true })
      })
    } finally {
      watcher.removeAllListeners()
      watcher.on('error', () => undefined)
      void watcher.cancel().catch(() => undefined)
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}
