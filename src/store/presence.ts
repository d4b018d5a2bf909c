// Which balancer instances share the store right now, for the rate limits
// (a route's limit is for the whole cluster: each of n live instances
// enforces 1/n of it). Built on the store's shared space (shared.ts), so it
// works alike on etcd, Consul, ZooKeeper and the file store:
//
//   presence/<id>   one key per instance, written every intervalMs (the
//                   value says who and when, for people reading the store).
//
// An instance is live while its key keeps changing: the reader notes, by
// its own clock, when it last saw a key's version change, and counts the
// key while that is less than ttlMs ago (no clock of another machine is
// trusted). A killed instance stops writing and drops out of every count
// within ttlMs plus one interval; one that stops cleanly deletes its key,
// which the others see at their next list. Keys unchanged for 10 x ttlMs
// are deleted by whoever sees them (checked against the version seen, so a
// key that came back to life is left alone).
//
// A store round trip per interval, never per request: the engines only get
// the count (Engine.setLimitShare).

import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import type { SharedSpace } from './shared.ts'
import { ANY_VERSION } from './shared.ts'

export const PRESENCE_DIR = 'presence'

export interface PresenceOptions {
  /** Called with the number of live instances (this one included) whenever it changes. */
  onCount(n: number): void
  /** A failed round; reported once per outage (the count stays as it was). */
  onError(err: Error | null): void
  intervalMs?: number
  ttlMs?: number
  /** Default: host name, process id and a random suffix. */
  id?: string
}

interface Seen {
  version: string
  at: number
}

export class Presence {
  readonly id: string
  readonly #space: SharedSpace
  readonly #o: PresenceOptions
  readonly #interval: number
  readonly #ttl: number
  readonly #seen = new Map<string, Seen>()
  #count = 0
  #failing = false

  constructor(space: SharedSpace, o: PresenceOptions) {
    this.#space = space
    this.#o = o
    this.#interval = o.intervalMs ?? 500
    this.#ttl = o.ttlMs ?? 2000
    this.id = o.id ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
  }

  get key(): string {
    return `${PRESENCE_DIR}/${encodeURIComponent(this.id)}`
  }

  /** One round: write our key, list the others, count the live ones. Returns the count. */
  async once(now = Date.now()): Promise<number> {
    await this.#space.put(this.key, JSON.stringify({ id: this.id, host: hostname(), pid: process.pid, at: new Date(now).toISOString() }), ANY_VERSION)
    const items = await this.#space.list(PRESENCE_DIR)
    let live = 0
    const present = new Set<string>()
    for (const it of items) {
      present.add(it.key)
      const prev = this.#seen.get(it.key)
      if (prev === undefined || prev.version !== it.version) this.#seen.set(it.key, { version: it.version, at: now })
      const at = this.#seen.get(it.key)?.at ?? now
      if (it.key === this.key || now - at < this.#ttl) live++
      else if (now - at > 10 * this.#ttl) void this.#space.delete(it.key, it.version).catch(() => false)
    }
    for (const k of this.#seen.keys()) if (!present.has(k)) this.#seen.delete(k)
    live = Math.max(1, live)
    if (live !== this.#count) {
      this.#count = live
      this.#o.onCount(live)
    }
    return live
  }

  /** Rounds every intervalMs until `signal` aborts; then deletes our key. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.once()
        if (this.#failing) this.#o.onError(null)
        this.#failing = false
      } catch (err) {
        if (!this.#failing) this.#o.onError(err as Error)
        this.#failing = true
      }
      await pause(this.#interval, signal)
    }
    await this.#space.delete(this.key).catch(() => false)
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done(): void {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
