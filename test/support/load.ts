// Steady keep-alive load for failover tests: `concurrency` clients, each on
// its own kept-alive connection, sending one request after another with a
// small gap, until stop() or `max` requests in all. Every outcome is kept
// (status, body, error, when) so a test can count failures around an event.

import { Agent } from 'node:http'
import { httpRequest } from './client.ts'

export interface Outcome {
  /** performance.now() when the response (or the error) came. */
  at: number
  status: number
  body: string
  /** '' when a response came. */
  error: string
}

export interface LoadOptions {
  concurrency?: number
  /** Pause between two requests of one client, ms. Default 5. */
  gapMs?: number
  /** Upper bound on requests in all. Default 5000. */
  max?: number
  path?: string
  method?: string
  body?: string
}

export class Load {
  readonly outcomes: Outcome[] = []
  #stopped = false
  readonly #done: Promise<void>
  readonly #agent: Agent

  constructor(port: number, opts: LoadOptions = {}) {
    const n = opts.concurrency ?? 4
    this.#agent = new Agent({ keepAlive: true, maxSockets: n })
    const max = opts.max ?? 5000
    const gap = opts.gapMs ?? 5
    const worker = async (): Promise<void> => {
      while (!this.#stopped && this.outcomes.length < max) {
        const o: Outcome = { at: 0, status: 0, body: '', error: '' }
        try {
          const r = await httpRequest(port, opts.path ?? '/', {}, { agent: this.#agent, method: opts.method ?? 'GET', ...(opts.body === undefined ? {} : { body: opts.body }), timeoutMs: 15_000 })
          o.status = r.status
          o.body = r.text
        } catch (err) {
          o.error = (err as Error).message
        }
        o.at = performance.now()
        this.outcomes.push(o)
        // Pacing, not waiting: the load's request rate.
        if (gap > 0) await new Promise((r) => setTimeout(r, gap))
      }
    }
    this.#done = Promise.all(Array.from({ length: n }, worker)).then(() => undefined)
  }

  /** Outcomes that are not a 200 (errors included), from `from` (performance.now()) on. */
  failures(from = 0): Outcome[] {
    return this.outcomes.filter((o) => o.at >= from && o.status !== 200)
  }

  /** Outcomes answered by `name` (the upstream's body), from `from` on. */
  servedBy(name: string, from = 0): number {
    return this.outcomes.filter((o) => o.at >= from && o.status === 200 && o.body === name).length
  }

  /** Resolves once `n` more outcomes have come in. */
  async more(n: number, ms = 10_000): Promise<void> {
    const target = this.outcomes.length + n
    const end = Date.now() + ms
    while (this.outcomes.length < target && !this.#stopped) {
      if (Date.now() > end) throw new Error(`load: fewer than ${n} more requests within ${ms} ms`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  async stop(): Promise<Outcome[]> {
    this.#stopped = true
    await this.#done
    this.#agent.destroy()
    return this.outcomes
  }
}
