// A request head written straight to a plain net.Socket's libuv
// handle, past net.Socket's Writable machinery (write, writeOrBuffer,
// _writeGeneric, the write request's bookkeeping and callbacks). The head is
// the one write of most requests; on the HTTP/2 benchmark that machinery
// was a few percent of the process's CPU per request (docs/http2.md).
//
// Only when nothing else is pending on the socket (no queued or corked
// bytes, connected, plain TCP): then the kernel takes the head at once in
// all but rare cases, and libuv orders any later write (a body through
// net.Socket) after it. Should the kernel not take it all, libuv keeps a
// copy and finishes it; net.Socket does not know of it, so its backpressure
// does not count those few bytes, and a failure shows as the socket's
// error or close, as for any other write. Where the bindings differ (another
// Node), or the socket is not in that state, it is an ordinary write.
// A raw upstream socket (raw-socket.ts) has no Writable to bypass: its own
// write takes the string as it is.

import type { Socket } from 'node:net'
import type { UpConn } from './pool.ts'

interface WriteReq {
  handle: unknown
  oncomplete: (status: number) => void
}
interface StreamHandle {
  writeLatin1String(req: WriteReq, s: string): number
}

const binding = (() => {
  try {
    const b = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (typeof b !== 'function') return null
    const sw = b('stream_wrap')
    const tcp = b('tcp_wrap')
    const TCP = tcp.TCP as { prototype: Record<string, unknown> } | undefined
    if (TCP === undefined || typeof TCP.prototype.writeLatin1String !== 'function') return null
    if (typeof sw.WriteWrap !== 'function' || !(sw.streamBaseState instanceof Int32Array) || typeof sw.kLastWriteWasAsync !== 'number') return null
    return { WriteWrap: sw.WriteWrap as new () => WriteReq, state: sw.streamBaseState, kAsync: sw.kLastWriteWasAsync, TCP: tcp.TCP as abstract new (...a: never[]) => unknown }
  } catch {
    return null
  }
})()

/** A write request whose write finished at once serves the next one. */
let spare: WriteReq | null = null

function ignore(): void {
  // A failed or cancelled head write surfaces as the socket's own error or close.
}

/** Writes `head` (latin1) to the connection; the return value is its socket's write() (false: wait for 'drain'). */
export function writeHead(uc: UpConn, head: string): boolean {
  if (uc.raw) return uc.sock.write(head, 'latin1')
  const sock = uc.sock as Socket
  const h = (sock as unknown as { _handle: StreamHandle | null })._handle
  if (binding === null || h === null || !(h instanceof binding.TCP) || sock.connecting || sock.writableLength !== 0 || sock.writableCorked !== 0 || sock.destroyed) {
    return sock.write(head, 'latin1')
  }
  const req = spare ?? new binding.WriteWrap()
  req.handle = h
  req.oncomplete = ignore
  if (h.writeLatin1String(req, head) !== 0) {
    spare = null
    return sock.write(head, 'latin1') // refused before anything went out (the socket is failing): net reports it
  }
  spare = binding.state[binding.kAsync] === 0 ? req : null
  return true
}
