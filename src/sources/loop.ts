// Pieces every discovery source's loop needs: a publisher that coalesces
// bursts and publishes only real changes, and a bounded map. (The abortable
// sleep and the backoff: kv/backoff.ts, shared with the stores.)

import type { Problem } from '../model/errors.ts'
import type { Server } from '../model/types.ts'
import type { DiscoveredMeta } from '../model/admission.ts'
import type { PublishDetail, Refusal } from './source.ts'
import type { Instance } from './registry.ts'

export interface PublishedSet {
  servers: Server[]
  names: string[]
  problems: Problem[]
  services?: Record<string, Instance[]>
  refused?: Refusal[]
  meta?: DiscoveredMeta[]
}

/**
 * Publishes a source's whole set. changed() after every state change: a burst
 * within coalesceMs is one publish; changed(true) publishes at once (a target
 * that is going away must leave before its process exits). Nothing is
 * published when the set is byte-for-byte what was published last.
 */
export class Publisher {
  readonly #coalesceMs: number
  readonly #current: () => PublishedSet
  readonly #emit: (servers: Server[], detail: PublishDetail) => void
  #timer: NodeJS.Timeout | null = null
  #last: string | null = null

  constructor(coalesceMs: number, current: () => PublishedSet, emit: (servers: Server[], detail: PublishDetail) => void) {
    this.#coalesceMs = coalesceMs
    this.#current = current
    this.#emit = emit
  }

  changed(urgent: boolean): void {
    if (urgent) {
      this.flush()
      return
    }
    if (this.#timer === null) this.#timer = setTimeout(() => this.flush(), this.#coalesceMs)
  }

  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    const set = this.#current()
    const key = JSON.stringify(set)
    if (key === this.#last) return
    this.#last = key
    this.#emit(set.servers, {
      names: set.names,
      problems: set.problems,
      ...(set.services === undefined ? {} : { services: set.services }),
      ...(set.refused === undefined ? {} : { refused: set.refused }),
      ...(set.meta === undefined ? {} : { meta: set.meta }),
    })
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }
}

/** Runs fn over items with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
