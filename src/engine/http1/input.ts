// Client input without a new buffer per read.
//
// For an accepted socket, net allocates a fresh 64 KiB buffer for every read
// and hands it through the readable stream ('data'). Sockets that net opens
// itself can read into the caller's buffer instead (the `onread` option,
// used for upstream connections in pool.ts); accepted sockets cannot be
// given that option. This module gives them the same path: listeners accept
// with `pauseOnConnect`, and `readInto` sets on the new socket the two
// fields net's own `onread` option sets (the buffer and the callback) and
// hands the buffer to the handle, before its first read. The fields are found
// at start-up by identity on a probe socket built with the public option,
// and the handle must offer `useUserBuffer`; if either is
// missing (a Node version that changed them), `readInto` returns false and
// the caller falls back to 'data' events: correct, only slower.
//
// All client sockets of the process read into one shared buffer, and the
// native side of every socket keeps pointing at it. So what a read brought
// must be consumed within the read callback and nothing may point into the
// buffer after it: the connection's unconsumed input is copied (conn.ts), and
// client bytes written to an upstream socket are written as a copy (`own`),
// since such a write can stay pending. Requests without a body, the common
// case, copy nothing.

import { Socket } from 'node:net'

const READ_BYTES = 64 * 1024

interface Fields {
  buffer: symbol
  callback: symbol
}

interface Handle {
  useUserBuffer?: (buf: Uint8Array) => void
}

function symbolHolding(o: object, value: unknown): symbol | null {
  for (const s of Object.getOwnPropertySymbols(o)) if ((o as Record<symbol, unknown>)[s] === value) return s
  return null
}

function discover(): Fields | null {
  try {
    const buf = Buffer.alloc(16)
    const callback = (): boolean => true
    const probe = new Socket({ onread: { buffer: buf, callback } })
    const fields = { buffer: symbolHolding(probe, buf), callback: symbolHolding(probe, callback) }
    probe.destroy()
    if (fields.buffer === null || fields.callback === null) return null
    return fields as Fields
  } catch {
    return null
  }
}

const FIELDS = discover()
let enabled = FIELDS !== null

/** Whether listeners bound from now on accept paused (so `readInto` comes before the first read). */
export function pauseOnConnect(): boolean {
  return enabled
}

/** Turns the shared buffer off (or back on, where available) for listeners bound from now on: the fallback path's tests. */
export function useSharedReads(on: boolean): void {
  enabled = on && FIELDS !== null
}

const shared = Buffer.allocUnsafeSlow(READ_BYTES)

/** `part` lives in the shared read buffer: the next read overwrites it. */
export function isShared(part: Buffer): boolean {
  return part.buffer === shared.buffer
}

/** Client input as a Buffer of its own: a copy when it lives in the shared read buffer. */
export function own(part: Buffer): Buffer {
  return isShared(part) ? Buffer.from(part) : part
}

/**
 * Makes the accepted, still paused `sock` read into the shared buffer:
 * `onRead` is called with the socket as `this`, the byte count and the
 * buffer. False (and nothing changed) when this Node does not allow it.
 */
export function readInto(sock: Socket, onRead: (this: Socket, n: number, buf: Buffer) => boolean): boolean {
  const f = FIELDS
  const handle = (sock as unknown as { _handle: Handle | null })._handle
  // Only before the first read: a socket accepted paused has readableFlowing false.
  if (f === null || sock.readableFlowing !== false || handle === null || typeof handle.useUserBuffer !== 'function') return false
  const s = sock as unknown as Record<symbol, unknown>
  s[f.buffer] = shared
  s[f.callback] = onRead
  handle.useUserBuffer(shared)
  return true
}
