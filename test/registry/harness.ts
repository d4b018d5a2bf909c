// Runs one registry source as main.ts does and records what it publishes and
// reports, so tests can wait for a published state (never for the clock).
import type { Server } from '../../src/model/types.ts'
import type { PublishDetail } from '../../src/sources/source.ts'
import type { Instance } from '../../src/sources/registry.ts'
import type { RegistrySource } from '../../src/sources/registry-source.ts'
import { until } from '../support/poll.ts'

export interface Recorded {
  source: RegistrySource
  /** Every publish, in order, with performance.now(). */
  publishes: Array<{ at: number; servers: Server[]; detail: PublishDetail }>
  /** Every report: an Error (trouble) or null (in sync again). */
  reports: Array<Error | null>
  /** `target:port` of the service's instances in the last publish (sorted); null when not published yet. */
  addresses(service: string): string[] | null
  instances(service: string): Instance[] | null
  /** Waits until the service's published addresses equal want; resolves with performance.now() of that publish. */
  waitFor(service: string, want: string[], ms?: number): Promise<number>
  stop(): Promise<void>
}

export function record(source: RegistrySource): Recorded {
  const ctl = new AbortController()
  const r: Recorded = {
    source,
    publishes: [],
    reports: [],
    instances(service) {
      const last = r.publishes.at(-1)
      return last?.detail.services?.[service] ?? null
    },
    addresses(service) {
      const list = r.instances(service)
      return list === null ? null : list.map((i) => `${i.Target}:${i.Port}`).sort()
    },
    async waitFor(service, want, ms = 5000) {
      const key = JSON.stringify([...want].sort())
      await until(() => JSON.stringify(r.addresses(service)) === key, ms, `${service} to be ${key} (last: ${JSON.stringify(r.addresses(service))})`)
      const hit = [...r.publishes].reverse().find((p, i, all) => {
        const next = all[i + 1]
        const now = JSON.stringify((p.detail.services?.[service] ?? []).map((x) => `${x.Target}:${x.Port}`).sort())
        const before = next === undefined ? null : JSON.stringify((next.detail.services?.[service] ?? []).map((x) => `${x.Target}:${x.Port}`).sort())
        return now === key && before !== key
      })
      return hit?.at ?? performance.now()
    },
    async stop() {
      ctl.abort()
      await done
    },
  }
  const done = source.run(
    ctl.signal,
    (servers, detail) => r.publishes.push({ at: performance.now(), servers, detail }),
    (err) => r.reports.push(err),
  )
  return r
}
