// The session loop DockerSource and SwarmSource share: subscribe to the
// Engine's /events FIRST, then list everything, so an object that changes in
// between is in the stream; events that arrive during the listing are queued
// and applied after it. A stream that ends or breaks ends the session: the
// loop reconnects with backoff and lists everything again. A listing every
// resyncMs is the backstop while a session lasts.

import type { DockerClient, Filters } from '../docker-api/client.ts'
import type { DockerEvent } from '../docker-api/types.ts'
import { sleep } from '../kv/backoff.ts'
import type { Backoff } from '../kv/backoff.ts'
import type { Publisher } from './loop.ts'

export interface EventFollower {
  client: DockerClient
  /** The `filters` of GET /events. */
  filters: Filters
  resyncMs: number
  backoff: Backoff
  pub: Publisher
  report: (err: Error | null) => void
  /** The full listing that starts every session (self detection included). */
  list(signal: AbortSignal): Promise<unknown>
  /** The backstop listing, every resyncMs. */
  resync(signal: AbortSignal): Promise<unknown>
  onEvent(e: DockerEvent, signal: AbortSignal): void
  /** A session ended (whatever it was following in the background stops with it). */
  ended?(): void
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))

/** Runs sessions until the signal aborts; each failure is reported, then retried after the backoff. */
export async function runEventSessions(f: EventFollower, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const ctl = new AbortController()
    try {
      await session(f, AbortSignal.any([signal, ctl.signal]))
    } catch (err) {
      if (signal.aborted) break
      f.report(asError(err))
    } finally {
      ctl.abort()
      f.ended?.()
    }
    await sleep(f.backoff.next(), signal)
  }
}

/** A promise run in the background of a session: its failure is reported unless the session is over. */
export function inBackground(p: Promise<unknown>, signal: AbortSignal, report: (err: Error) => void): void {
  p.catch((err: unknown) => {
    if (!signal.aborted) report(asError(err))
  })
}

async function session(f: EventFollower, signal: AbortSignal): Promise<void> {
  let queue: DockerEvent[] | null = []
  const { ended } = await f.client.events(f.filters, signal, (o) => {
    if (queue !== null) queue.push(o as DockerEvent)
    else f.onEvent(o as DockerEvent, signal)
  })
  // Subscribed. A failure while listing is this session's failure; the stream's end is awaited below.
  ended.catch(() => {})
  await f.list(signal)
  f.pub.changed(true)
  const queued = queue
  queue = null
  for (const e of queued) f.onEvent(e, signal)
  f.backoff.reset()
  f.report(null)
  const timer = setInterval(
    () =>
      inBackground(
        f.resync(signal).then(() => f.pub.changed(false)),
        signal,
        f.report,
      ),
    f.resyncMs,
  )
  try {
    await ended
  } finally {
    clearInterval(timer)
  }
}
