// Consul as a service registry, over its HTTP API (kv/consul-client.ts, the
// client the Consul store uses). One blocking query per followed service on
// /v1/health/service/<name>?passing, and two on /v1/catalog/services for the
// tag-driven servers (by tag, and by Meta through Consul's filter). Blocking queries follow Consul's documented rules, as
// the store's watch does: an unchanged X-Consul-Index is a timeout, not a
// change; an index that went backwards (snapshot restore, new cluster) resets
// to 0 and reads again; a query that wakes early with nothing new is not
// retried in a tight loop.

import type { Blocking, ConsulClient, Indexed } from '../../kv/consul-client.ts'
import { Backoff, sleep } from '../../kv/backoff.ts'
import type { Instance, InstanceListener, RegistryDriver, ServiceListListener } from '../registry.ts'
import type { HealthEntry } from './translate.ts'
import { ENABLE_META_FILTER, instancesOf, taggedServers, taggedServices } from './translate.ts'

export interface ConsulDriverOptions {
  http: ConsulClient
  /** The registry's name, in problem paths. */
  name: string
  /** Longest a blocking query waits. Default 60 s (Consul's own default is 5 min). */
  waitMs?: number
  /** Bound on a request beyond its wait. Default 5 s. */
  timeoutMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class ConsulDriver implements RegistryDriver {
  readonly #o: Required<Omit<ConsulDriverOptions, 'http' | 'name'>>
  readonly #http: ConsulClient
  readonly #name: string

  constructor(o: ConsulDriverOptions) {
    this.#http = o.http
    this.#name = o.name
    this.#o = { waitMs: o.waitMs ?? 60_000, timeoutMs: o.timeoutMs ?? 5000, minBackoffMs: o.minBackoffMs ?? 100, maxBackoffMs: o.maxBackoffMs ?? 5000 }
  }

  follow(service: string, signal: AbortSignal, on: InstanceListener): Promise<void> {
    return this.#blocking(
      (q, ms) => this.#http.healthService(service, q, ms, signal),
      signal,
      on.error,
      (body) => {
        const { instances, problems } = instancesOf(this.#name, service, body as HealthEntry[])
        on.set(instances, problems)
      },
    )
  }

  /**
   * Two blocking queries on the services list: every service with its tags
   * (the tag balancer.enable=true, in any case), and those Consul's own filter
   * finds with Meta balancer_enable=true (the list shows tags, not Meta).
   * Each answer reports the union with the other's last one, so a failing
   * filter never holds back the tagged services.
   */
  async discover(signal: AbortSignal, on: ServiceListListener): Promise<void> {
    let byTag: string[] | null = null
    let byMeta: string[] | null = null
    const report = (): void => {
      on.set([...new Set([...(byTag ?? []), ...(byMeta ?? [])])].sort())
    }
    await Promise.all([
      this.#blocking(
        (q, ms) => this.#http.catalogServices(null, q, ms, signal),
        signal,
        on.error,
        (body) => {
          byTag = taggedServices(body as Record<string, string[]>)
          report()
        },
      ),
      this.#blocking(
        (q, ms) => this.#http.catalogServices(ENABLE_META_FILTER, q, ms, signal),
        signal,
        on.error,
        (body) => {
          byMeta = Object.keys(body as Record<string, string[]>).sort()
          report()
        },
      ),
    ])
  }

  servers(instances: ReadonlyMap<string, readonly Instance[]>): ReturnType<typeof taggedServers> {
    return taggedServers(this.#name, instances)
  }

  close(): void {
    this.#http.close()
  }

  /** The blocking-query loop: apply(body) for the first answer and every answer with a new index. */
  async #blocking(query: (q: Blocking | null, timeoutMs: number) => Promise<Indexed<unknown>>, signal: AbortSignal, onError: (err: Error) => void, apply: (body: unknown) => void): Promise<void> {
    const backoff = new Backoff(this.#o.minBackoffMs, this.#o.maxBackoffMs)
    const wait = this.#o.waitMs
    // Consul adds up to wait/16 of jitter to a blocking query.
    const timeoutMs = wait + Math.ceil(wait / 16) + this.#o.timeoutMs
    let index = 0
    while (!signal.aborted) {
      const started = Date.now()
      try {
        const res = await query(index > 0 ? { index, waitMs: wait } : null, index > 0 ? timeoutMs : this.#o.timeoutMs)
        const seen = res.index
        backoff.reset()
        if (index > 0 && seen === index) {
          // The wait ran out, or Consul woke the query with nothing new: never spin.
          await sleep(Math.max(0, 50 - (Date.now() - started)), signal)
          continue
        }
        apply(res.body)
        // Backwards (a snapshot restore, a new cluster) or missing: start over from 0.
        index = seen < index || seen === 0 ? 0 : seen
        if (index === 0) await sleep(Math.max(0, 250 - (Date.now() - started)), signal)
      } catch (err) {
        if (signal.aborted) return
        index = 0
        onError(err instanceof Error ? err : new Error(String(err)))
        await sleep(backoff.next(), signal)
      }
    }
  }
}
