// The shared client read buffer.
//
// Client sockets on raw handles (client-socket.ts) all read into one
// process-wide buffer instead of a fresh 64 KiB buffer per read, and the
// native side of every socket keeps pointing at it. So what a read brought
// must be consumed within the read callback and nothing may point into the
// buffer after it: the connection's unconsumed input is copied (conn.ts), and
// client bytes written to an upstream socket are written as a copy (`own`),
// since such a write can stay pending. Requests without a body, the common
// case, copy nothing.

const READ_BYTES = 64 * 1024

export const shared = Buffer.allocUnsafeSlow(READ_BYTES)

/** `part` lives in the shared read buffer: the next read overwrites it. */
export function isShared(part: Buffer): boolean {
  return part.buffer === shared.buffer
}

/** Client input as a Buffer of its own: a copy when it lives in the shared read buffer. */
export function own(part: Buffer): Buffer {
  return isShared(part) ? Buffer.from(part) : part
}
