// Accepting a burst of new clients in the turns that see its first connections.
//
// libuv accepts one connection per listening socket per event-loop turn.
// With busy client connections a turn takes tens of milliseconds, so when
// 1,000 clients connect at once a single socket drains its accept queue at
// a few hundred a second and the last clients wait seconds. Right after
// libuv hands over a connection, acceptMore() goes on with accept4(2)
// (libc.ts) until the queue is empty (EAGAIN) or MAX_PER_EVENT more are
// taken, and wraps each in a TCP handle, as libuv would have a turn later.
// One listening socket per address is then enough (it used to take 32
// SO_REUSEPORT sockets, 32 descriptors per address).
//
// Descriptor exhaustion: accept4 failing with EMFILE or ENFILE (or the
// kernel short of memory) stops batching for a backoff that doubles from
// BACKOFF_MIN_MS to BACKOFF_MAX_MS and resets on the next success; the
// turn's own accept stays with libuv, which on EMFILE closes the queued
// connections with its reserve descriptor, so the listening socket stops
// being readable and the loop does not spin on it.

import type { Handle } from './http1/client-socket.ts'
import { Errno, SOCK_CLOEXEC, SOCK_NONBLOCK, libc } from './libc.ts'

/**
 * At most this many extra connections per readiness event of one socket.
 * Taken 64 at a time (HAProxy's tune.maxaccept), with turns of 10-30 ms
 * under load, a burst of 1,000 took 16 events and its last clients waited
 * 0.2-0.4 s in the queue; at 256 it is in within four. Taking one costs
 * 10-30 µs, so a batch stays within a few milliseconds and the
 * connections already open are not held up behind it. The whole queue at
 * once (up to 1,024) emptied it sooner still but made no client faster:
 * the wait moved to the turn after, which then read a thousand requests
 * and opened hundreds of upstream connections (docs/performance.md).
 */
export const MAX_PER_EVENT = 256

const BACKOFF_MIN_MS = 10
const BACKOFF_MAX_MS = 1000

interface TcpCtor {
  new (type: number): Handle & { open(fd: number): number }
}

function loadTcp(): { TCP: TcpCtor; SOCKET: number } | null {
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (typeof binding !== 'function') return null
    const tcp = binding('tcp_wrap')
    const TCP = tcp.TCP as TcpCtor | undefined
    const SOCKET = (tcp.constants as { SOCKET?: unknown } | undefined)?.SOCKET
    if (typeof TCP !== 'function' || typeof TCP.prototype.open !== 'function' || typeof SOCKET !== 'number') return null
    return { TCP, SOCKET }
  } catch {
    return null
  }
}

const L = libc()
const T = L === null ? null : loadTcp()
const FLAGS = SOCK_NONBLOCK | SOCK_CLOEXEC

/** Process-wide (descriptors are): while exhausted, no extra accepts before `pausedUntil`. */
const state = { pausedUntil: 0, delay: 0, exhausted: 0, extra: 0 }

/** True where accept4 can be called: the engine then needs one listening socket per address. */
export function batchAccepts(): boolean {
  return T !== null
}

/** Counters for GET /status: extra connections taken by batches, and descriptor-exhaustion events. */
export function acceptStats(): { extra: number; exhausted: number } {
  return { extra: state.extra, exhausted: state.exhausted }
}

/** A descriptor-exhaustion error (from accept4, or libuv's accept as a negative errno): back off. */
export function exhausted(errno: number): boolean {
  const e = errno < 0 ? -errno : errno
  if (e !== Errno.EMFILE && e !== Errno.ENFILE && e !== Errno.ENOBUFS && e !== Errno.ENOMEM) return false
  state.exhausted++
  state.delay = state.delay === 0 ? BACKOFF_MIN_MS : Math.min(state.delay * 2, BACKOFF_MAX_MS)
  state.pausedUntil = Date.now() + state.delay
  return true
}

/**
 * Called right after libuv handed `listening` a connection: takes up to
 * MAX_PER_EVENT more waiting ones and gives each to `onHandle`.
 */
export function acceptMore(listening: { readonly fd: number }, onHandle: (h: Handle) => void): void {
  if (T === null || L === null) return
  if (state.delay !== 0 && Date.now() < state.pausedUntil) return
  for (let i = 0; i < MAX_PER_EVENT; i++) {
    // Read each time: onHandle never closes the listener, but a closed
    // one reports -1 here rather than a number the kernel may reuse.
    const fd = listening.fd
    if (fd < 0) return
    const c = L.accept4(fd, FLAGS)
    if (c < 0) {
      const e = L.errno()
      if (e === Errno.EINTR || e === Errno.ECONNABORTED) continue
      exhausted(e)
      return // EAGAIN: the queue is empty; anything else: libuv's next accept reports it
    }
    const h = new T.TCP(T.SOCKET)
    if (h.open(c) !== 0) {
      L.close(c)
      h.close(noop)
      continue
    }
    state.delay = 0
    state.extra++
    onHandle(h)
  }
}

function noop(): void {}
