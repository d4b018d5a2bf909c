// Runs a discovery source for a test and records what it publishes, with the
// time of each publish, so tests can wait for a set (bounded) and measure
// how long discovery took.
import type { Server } from '../../src/model/types.ts'
import type { DiscoverySource, PublishDetail } from '../../src/sources/source.ts'

export interface PublishedAt {
  at: number
  servers: Server[]
  names: string[]
  problems: PublishDetail['problems']
}

export class Recorder {
  readonly sets: PublishedAt[] = []
  readonly reports: Array<{ at: number; err: Error | null }> = []
  readonly #watchers = new Set<() => void>()

  publish = (servers: Server[], detail: PublishDetail): void => {
    this.sets.push({ at: Date.now(), servers, names: detail.names, problems: detail.problems })
    for (const w of [...this.#watchers]) w()
  }

  report = (err: Error | null): void => {
    this.reports.push({ at: Date.now(), err })
    for (const w of [...this.#watchers]) w()
  }

  latest(): PublishedAt | undefined {
    return this.sets[this.sets.length - 1]
  }

  /** The first publish (the latest one, or a later one) for which pred holds. */
  waitFor(pred: (p: PublishedAt) => boolean, ms: number, what: string): Promise<PublishedAt> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const last = this.latest()
        if (last !== undefined && pred(last)) {
          resolve(last)
          return true
        }
        return false
      }
      if (check()) return
      const w = (): void => {
        if (!check()) return
        clearTimeout(t)
        this.#watchers.delete(w)
      }
      const t = setTimeout(() => {
        this.#watchers.delete(w)
        const errs = this.reports.filter((r) => r.err !== null).map((r) => r.err?.message)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; last set: ${JSON.stringify(this.latest()?.servers)}; reports: ${JSON.stringify(errs.slice(-3))}`))
      }, ms)
      this.#watchers.add(w)
    })
  }

  /** Resolves on the next report(err) with an error (bounded). */
  waitReport(pred: (err: Error | null) => boolean, ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const from = this.reports.length
      const w = (): void => {
        if (!this.reports.slice(from).some((r) => pred(r.err))) return
        clearTimeout(t)
        this.#watchers.delete(w)
        resolve()
      }
      const t = setTimeout(() => {
        this.#watchers.delete(w)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
      }, ms)
      this.#watchers.add(w)
    })
  }
}

export function runSource(src: DiscoverySource): { rec: Recorder; stop(): Promise<void> } {
  const rec = new Recorder()
  const ctl = new AbortController()
  const done = src.run(ctl.signal, rec.publish, rec.report)
  return {
    rec,
    async stop() {
      ctl.abort()
      await done
    },
  }
}

/** Every upstream (and fallback) on one listen address, as `target:port`, sorted. */
export function targetsOn(p: PublishedAt | undefined, address: string): string[] {
  if (p === undefined) return []
  return p.servers
    .filter((s) => s.address === address)
    .flatMap((s) => [...s.upstreams, ...s.fallbacks].map((u) => `${u.Target}:${u.Port}`))
    .sort()
}
