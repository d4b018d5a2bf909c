// glibc's allocator, set for idle TLS connections (once, with the first
// TLS context the process builds; a process without TLS keeps glibc's
// defaults).
//
// Node's TLSWrap gives every connection a 64 KiB buffer for encrypted
// input (sized by libuv's read suggestion) and keeps it while the
// connection idles; a connection writes only the first page or two of it.
// Taken from the heap, it lands on memory earlier handshakes wrote and
// freed, so most of it is resident; given a mapping of its own, only the
// pages it writes are. glibc maps a block of its own only from its mmap
// threshold up (128 KiB, growing) and only when the heap's top cannot hold
// it, and keeps 128 KiB spare at the top (M_TOP_PAD) that such blocks fit
// in. With the threshold at 64 KiB and no spare top: 10,000 idle TLS
// connections measured 30 KiB each instead of 41 (docs/tls.md). Blocks
// under 64 KiB (OpenSSL's 16 KiB record buffers among them) stay on the
// heap; a 64 KiB one costs a mapping and an unmapping, once per connection.

import { M_MMAP_THRESHOLD, M_TOP_PAD, mallopt } from '../libc.ts'

/** glibc's mmap threshold here: the encrypted-input buffer and up. */
export const MMAP_THRESHOLD = 64 * 1024

let done = false

/** Sets the allocator once per process; false where there is no mallopt (not glibc, no node:ffi). */
export function tuneMallocForTls(): boolean {
  if (done) return false
  done = true
  const set = mallopt()
  if (set === null) return false
  return set(M_MMAP_THRESHOLD, MMAP_THRESHOLD) && set(M_TOP_PAD, 0)
}
