// The file store's lock across processes: flock(2) on `<config>.lock`
// beside the configuration, so balancers sharing one file take turns to
// read, check and write it, as the KV stores' check-and-set makes them.
// Node has no file lock of its own; flock is called through node:ffi.
//
// flock, not a lock file created and removed: the kernel releases a flock
// when the process holding it dies, so a killed balancer never leaves the
// store locked. The lock file is created once (mode 0600) and never
// removed while in use (removing it would let a second process lock a new
// inode while the first holds the old one). A file bind-mounted on its own
// (its directory on another device, in a container's layer) is locked
// itself: its inode is the one every container shares, and it is written
// in place, never renamed over (file-replace.ts).
//
// The event loop never waits on the lock: LOCK_EX|LOCK_NB, and while
// another process holds it, retries after 2 ms doubling to 50 ms, up to
// `timeoutMs`; then the write fails with E_STORE_UNAVAILABLE naming the
// lock file, before anything is written.
//
// Where node:ffi or flock cannot be loaded, or the lock file cannot be
// created (a read-only directory), the store works as it did without the
// lock: correct for one balancer per file; the owner is told once.

import { close, constants, open } from 'node:fs'
import { stat } from 'node:fs/promises'
import { promisify } from 'node:util'
import { dirname } from 'node:path'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { linuxFfi } from '../native/ffi.ts'

const openFd = promisify(open) as (path: string, flags: number, mode?: number) => Promise<number>
const closeFd = promisify(close)

const LOCK_EX = 2
const LOCK_NB = 4
const LOCK_UN = 8
const EINTR = 4
const EWOULDBLOCK = 11

interface Flock {
  /** flock(fd, op): 0, or -1 with errno() set. */
  flock(fd: number, op: number): number
  errno(): number
}

let loaded: Flock | null | undefined

function flockCall(): Flock | null {
  if (loaded !== undefined) return loaded
  loaded = null
  const ffi = linuxFfi()
  if (ffi === undefined) return loaded
  try {
    const { functions: f } = ffi.dlopen(null, {
      flock: { arguments: ['int32', 'int32'], return: 'int32' },
      __errno_location: { arguments: [], return: 'pointer' },
    })
    const flock = f.flock as (fd: number, op: number) => number
    // errno lives in thread-local storage; its address is fixed for the thread.
    const errnoAt = (f.__errno_location as () => bigint)()
    loaded = { flock, errno: () => ffi.getInt32(errnoAt, 0) }
  } catch {
    // a C library without flock
  }
  return loaded
}

export interface FileLockOptions {
  /** Give up on a lock another process holds after this long. */
  timeoutMs: number
  /** Told once why writes are not serialized with other processes. */
  onNotice: (message: string) => void
}

export class FileLock {
  /** The configuration file the lock guards. */
  readonly #config: string
  readonly #timeoutMs: number
  readonly #onNotice: (message: string) => void
  /** The file locked: `<config>.lock`, or the configuration file itself when it is a mount point of its own; null until the first run. */
  #path: string | null = null
  /**
   * The lock file's descriptor, kept open between runs (opening it for
   * each write cost 90 us, as much as 10% of a journal append); a plain
   * descriptor, not a FileHandle, which Node refuses to see collected
   * unclosed. -1: not open.
   */
  #fd = -1
  /** false: no lock to take here (said once through onNotice). */
  #usable = true
  #closed = false

  constructor(config: string, o: FileLockOptions) {
    this.#config = config
    this.#timeoutMs = o.timeoutMs
    this.#onNotice = o.onNotice
  }

  /** Runs fn holding the lock (or without it, where there is none); the caller serializes calls within the process. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const fd = await this.#acquire()
    try {
      return await fn()
    } finally {
      if (fd >= 0) flockCall()?.flock(fd, LOCK_UN)
      // A run after close() (a watch check in flight) keeps no descriptor open.
      if (this.#closed) await this.#closeFd()
    }
  }

  /** Closes the lock file's descriptor (the file itself stays, for the next process). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#closeFd()
  }

  /** The lock file's descriptor, locked; -1 when there is no lock to take. */
  async #acquire(): Promise<number> {
    if (!this.#usable) return -1
    const lib = flockCall()
    if (lib === null) {
      this.#disable(`flock(2) is not available here (node:ffi is off or missing): writes to ${this.#config} are not serialized with other processes; one balancer per file is safe`)
      return -1
    }
    const fd = await this.#open()
    if (fd < 0) return -1
    const deadline = Date.now() + this.#timeoutMs
    let wait = 2
    for (;;) {
      if (lib.flock(fd, LOCK_EX | LOCK_NB) === 0) return fd
      const errno = lib.errno()
      if (errno !== EWOULDBLOCK && errno !== EINTR) {
        this.#disable(`cannot lock ${this.#path} (errno ${errno}): writes to ${this.#config} are not serialized with other processes`)
        await this.#closeFd()
        return -1
      }
      if (Date.now() >= deadline) {
        throw new BalancerError(ErrorCode.StoreUnavailable, `${this.#path} is held by another process for more than ${this.#timeoutMs} ms; nothing was written`)
      }
      await new Promise((r) => setTimeout(r, wait))
      wait = Math.min(wait * 2, 50)
    }
  }

  async #open(): Promise<number> {
    if (this.#fd >= 0) return this.#fd
    // A file that is its own mount point: lock the file (read-only is enough for flock). Decided once.
    this.#path ??= (await ownMount(this.#config)) ? this.#config : `${this.#config}.lock`
    try {
      this.#fd = this.#path === this.#config ? await openFd(this.#path, constants.O_RDONLY) : await openFd(this.#path, constants.O_RDWR | constants.O_CREAT, 0o600)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // No directory yet: nothing is there to read, and a write fails on its own, saying why.
      if (code === 'ENOENT') return -1
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw new BalancerError(ErrorCode.StoreUnavailable, `cannot open ${this.#path}: ${(err as Error).message}`)
      this.#disable(`cannot create ${this.#path} (${(err as Error).message}): writes to ${this.#config} are not serialized with other processes; one balancer per file is safe`)
      return -1
    }
    return this.#fd
  }

  async #closeFd(): Promise<void> {
    const fd = this.#fd
    this.#fd = -1
    if (fd >= 0) await closeFd(fd).catch(() => undefined)
  }

  #disable(message: string): void {
    this.#usable = false
    this.#onNotice(message)
  }
}

/** Whether the file exists on another device than its directory (bind-mounted on its own). */
async function ownMount(path: string): Promise<boolean> {
  try {
    const [f, d] = await Promise.all([stat(path), stat(dirname(path))])
    return f.dev !== d.dev
  } catch {
    return false
  }
}
