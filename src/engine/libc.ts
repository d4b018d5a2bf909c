// The few libc calls Node has no API for, through node:ffi (no compiled
// code: the C library's own functions, resolved in the running process).
//
// Why: libuv (1.52, in Node 26) accepts one connection per listening socket
// per event-loop turn, and Node's net offers no way to accept more; under
// load a turn takes tens of milliseconds, so a burst of new clients waits
// seconds in the accept queue of a single socket. accept4(2) on the
// listening descriptor lets the engine take the rest of a burst in the
// turn that saw the first (accept-batch.ts). setrlimit(2) raises the
// descriptor limit where Node has not (fd-budget.ts). mallopt(3) sets
// glibc's allocator for TLS connections (tls/malloc.ts); it is loaded on
// its own (`mallopt()`), so a C library without it (musl) keeps the rest.
//
// node:ffi is experimental (Node 26.1+), disabled by --no-experimental-ffi
// and by the permission model without --allow-ffi. `libc()` returns null
// wherever it cannot be loaded or a symbol is missing; every caller then
// keeps to what Node does by itself: correct, only slower under bursts.

import { Buffer } from 'node:buffer'
import { linuxFfi, single } from '../native/ffi.ts'

/** The calls, typed as the engine uses them. */
export interface Libc {
  /** accept4(fd, NULL, NULL, flags): a new descriptor, or -1 with errno() set. */
  accept4(fd: number, flags: number): number
  close(fd: number): number
  /** errno of this thread's last failed call. */
  errno(): number
  /** [soft, hard] RLIMIT_NOFILE, or null when the call failed. */
  getNofile(): [number, number] | null
  /** Sets RLIMIT_NOFILE; true when the kernel took it. */
  setNofile(soft: number, hard: number): boolean
}

/** Linux values (the only platform this is loaded on). */
export const SOCK_NONBLOCK = 0o4000
export const SOCK_CLOEXEC = 0o2000000
export const Errno = { EINTR: 4, EAGAIN: 11, ENOMEM: 12, ENFILE: 23, EMFILE: 24, ENOBUFS: 105, ECONNABORTED: 103 } as const

const RLIMIT_NOFILE = 7
/** RLIM_INFINITY as an unsigned 64-bit value. */
const RLIM_INFINITY = 0xffffffffffffffffn

let loaded: Libc | null | undefined

export function libc(): Libc | null {
  if (loaded === undefined) loaded = load()
  return loaded
}

function load(): Libc | null {
  const ffi = linuxFfi()
  if (ffi === undefined) return null
  try {
    const { functions: f } = ffi.dlopen(null, {
      accept4: { arguments: ['int32', 'pointer', 'pointer', 'int32'], return: 'int32' },
      close: { arguments: ['int32'], return: 'int32' },
      __errno_location: { arguments: [], return: 'pointer' },
      getrlimit: { arguments: ['int32', 'buffer'], return: 'int32' },
      setrlimit: { arguments: ['int32', 'buffer'], return: 'int32' },
    })
    const accept4 = f.accept4 as (fd: number, addr: bigint, len: bigint, flags: number) => number
    const close = f.close as (fd: number) => number
    const getrlimit = f.getrlimit as (res: number, buf: Buffer) => number
    const setrlimit = f.setrlimit as (res: number, buf: Buffer) => number
    // errno lives in thread-local storage; its address is fixed for the thread.
    const errnoAt = (f.__errno_location as () => bigint)()
    const rl = Buffer.alloc(16)
    const toNumber = (v: bigint): number => (v === RLIM_INFINITY || v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v))
    return {
      accept4: (fd, flags) => accept4(fd, 0n, 0n, flags),
      close,
      errno: () => ffi.getInt32(errnoAt, 0),
      getNofile() {
        if (getrlimit(RLIMIT_NOFILE, rl) !== 0) return null
        return [toNumber(rl.readBigUInt64LE(0)), toNumber(rl.readBigUInt64LE(8))]
      },
      setNofile(soft, hard) {
        rl.writeBigUInt64LE(BigInt(soft), 0)
        rl.writeBigUInt64LE(hard >= Number.MAX_SAFE_INTEGER ? RLIM_INFINITY : BigInt(hard), 8)
        return setrlimit(RLIMIT_NOFILE, rl) === 0
      },
    }
  } catch {
    return null
  }
}

/** mallopt(3) parameters (glibc's malloc.h). */
export const M_TOP_PAD = -2
export const M_MMAP_THRESHOLD = -3

/** glibc's mallopt(param, value): true when it took the value; null where there is none. */
export const mallopt = single('mallopt', { arguments: ['int32', 'int32'], return: 'int32' }, (fn) => {
  const call = fn as (param: number, value: number) => number
  return (param: number, value: number): boolean => call(param, value) === 1
})

/**
 * glibc's malloc_trim(0): gives the free memory at the top of malloc's heap
 * and in its free pages back to the kernel; null where there is none.
 */
export const mallocTrim = single('malloc_trim', { arguments: ['uint64'], return: 'int32' }, (fn) => {
  const call = fn as (pad: bigint) => number
  return (): void => {
    call(0n)
  }
})
