// The embedded default store: one JSON file (comments and the seed's loose
// forms accepted on read, one canonical form written back).
//
// Durability: a write goes to a temporary file in the same directory, is
// fsynced, renamed over the target, and the directory is fsynced; update()
// resolves only after that, so an acknowledged write survives a crash.
// Hand edits: update() checks the file under the lock before mutating, so an
// edit made since the last read is the base of the next write, never lost.
// The check is the file's signature (inode, size, mtime, ctime: any write or
// rename changes it), not its text: a write that finds the signature of the
// file it wrote last goes on with the config it holds, without reading and
// comparing the file (10 MiB at 10,000 routes). The file is written from the
// remembered bytes of each server (validConfigParts) with one writev(2), so
// a write encodes only the servers it changed; the whole file is still
// written and fsynced (measured in docs/performance.md).

import { randomBytes } from 'node:crypto'
import { open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { configHash, sameValidConfig, validConfigHash, validConfigParts } from '../model/canonical.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { EMPTY_CONFIG, parseConfigText } from '../model/parse.ts'
import { fileSignature, statSignature, watchFileChanges } from './file-watch.ts'
import { AsyncLock } from './lock.ts'
import type { ConfigStore, Mutation, StoreState, WatchHandlers } from './store.ts'
import { FileShared } from './shared-file.ts'
import type { SharedSpace } from './shared.ts'

export interface FileStoreOptions {
  /** Stat poll period of watch(), the fallback when fs.watch misses a change. Default 500 ms. */
  pollMs?: number
  /** Quiet time before a burst of file events becomes one reload. Default 50 ms. */
  debounceMs?: number
}

const EMPTY_REVISION = validConfigHash(EMPTY_CONFIG)

/** The file's signature when it was last read or written, and the state it holds. */
interface Known {
  sig: string
  state: StoreState
}

export class FileStore implements ConfigStore {
  readonly kind = 'file'
  readonly location: string
  readonly #dir: string
  readonly #base: string
  readonly #pollMs: number
  readonly #debounceMs: number
  readonly #lock = new AsyncLock()
  #known: Known | null = null
  #shared: FileShared | null = null

  constructor(path: string, opts: FileStoreOptions = {}) {
    this.location = resolve(path)
    this.#dir = dirname(this.location)
    this.#base = basename(this.location)
    this.#pollMs = opts.pollMs ?? 500
    this.#debounceMs = opts.debounceMs ?? 50
  }

  /** A missing file is the empty config (the file is created by the first write). */
  load(): Promise<StoreState> {
    return this.#lock.run(() => this.#current())
  }

  update(mutate: Mutation): Promise<StoreState> {
    return this.#lock.run(async () => {
      const current = await this.#current()
      const next = mutate(current.config)
      // The same canonical text (compared server by server): nothing to write.
      if (sameValidConfig(current.config, next)) return current
      // The canonical text of a ValidConfig parses back to the same config
      // (test/model/golden.test.ts), so the config is kept, not re-read.
      const sig = await this.#write(validConfigParts(next))
      const state = { config: next, revision: validConfigHash(next) }
      this.#known = { sig, state }
      return state
    })
  }

  /**
   * Reports every change of the file's meaning: a valid config whose revision
   * differs from the last one reported goes to onChange (the first check, at
   * start, always reports); invalid content goes to onError once per distinct
   * content. A file removed while running is an error, not an empty config:
   * deleting or renaming the file must not silently drop every server.
   */
  watch(signal: AbortSignal, handlers: WatchHandlers): void {
    const seen: WatchCursor = { revision: null, bad: null }
    const check = (): void => {
      void this.#lock
        .run(() => this.#check(seen, handlers))
        .catch((err: unknown) => {
          // A handler threw; the watcher keeps running and the failure is reported once here.
          safeOnError(handlers, err)
        })
    }
    watchFileChanges({
      dir: this.#dir,
      base: this.#base,
      path: this.location,
      pollMs: this.#pollMs,
      debounceMs: this.#debounceMs,
      signal,
      onTrigger: check,
    })
    if (!signal.aborted) check()
  }

  /** Beside the file: `<config>.d/` (store/shared-file.ts). */
  shared(): SharedSpace {
    this.#shared ??= new FileShared(this.location, { pollMs: this.#pollMs })
    return this.#shared
  }

  async close(): Promise<void> {
    // Watchers stop with their AbortSignal; wait for a write in progress.
    await this.#shared?.close()
    await this.#lock.run(() => undefined)
  }

  // Runs under the lock and calls the handlers inside it, so a report can never
  // overtake a write that finished after the read it is based on.
  async #check(seen: WatchCursor, handlers: WatchHandlers): Promise<void> {
    const sig = await fileSignature(this.location)
    let state: StoreState
    if (this.#known !== null && this.#known.sig === sig) state = this.#known.state
    else {
      let text: string | null
      try {
        text = await this.#readText()
      } catch (err) {
        report(seen, handlers, `io:${String(err)}`, asBalancerError(err))
        return
      }
      if (text === null && seen.revision !== null && seen.revision !== EMPTY_REVISION) {
        const msg = `${this.location} was removed; the last good configuration stays in use`
        report(seen, handlers, 'missing', new BalancerError(ErrorCode.StoreUnavailable, msg))
        return
      }
      try {
        state = this.#parse(text, sig)
      } catch (err) {
        report(seen, handlers, `bad:${configHash(text)}`, asBalancerError(err))
        return
      }
    }
    // After an error, a valid read is reported even with an unchanged revision
    // so the owner can clear the error it is showing.
    if (state.revision === seen.revision && seen.bad === null) return
    seen.revision = state.revision
    seen.bad = null
    handlers.onChange(state)
  }

  /**
   * The file's state: the known one while its signature is the one read or
   * written last, else read and parsed. The signature is taken before the
   * read, so a change during the read makes the next check read again.
   */
  async #current(): Promise<StoreState> {
    const sig = await fileSignature(this.location)
    if (this.#known !== null && this.#known.sig === sig) return this.#known.state
    return this.#parse(await this.#readText(), sig)
  }

  /** Parses text read when the file had signature `sig`; the result becomes the known state. */
  #parse(text: string | null, sig: string): StoreState {
    let config
    try {
      config = text === null ? EMPTY_CONFIG : parseConfigText(text)
    } catch (err) {
      const e = asBalancerError(err)
      throw new BalancerError(e.code, `${this.location}: ${e.message}`, e.problems)
    }
    const state = { config, revision: validConfigHash(config) }
    this.#known = { sig, state }
    return state
  }

  /** null when the file does not exist. */
  async #readText(): Promise<string | null> {
    try {
      return await readFile(this.location, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw storeError(`cannot read ${this.location}`, err)
    }
  }

  /** Writes the parts durably; resolves with the signature of the file written (its inode's, taken after the rename). */
  async #write(parts: readonly Buffer[]): Promise<string> {
    // A symlinked config file (dotfiles, mounted secrets) stays a symlink: the
    // file it points to is the one replaced.
    const target = await realpath(this.location).catch(() => this.location)
    const dir = dirname(target)
    const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      const mode = await stat(target).then(
        (s) => s.mode & 0o777,
        () => 0o644,
      )
      const fh = await open(tmp, 'wx', mode)
      let sig: string
      try {
        await writeAll(fh, parts)
        await fh.sync()
        try {
          await rename(tmp, target)
          // The renamed inode's own stat: a later edit or replacement changes it.
          sig = statSignature(await fh.stat({ bigint: true }))
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          // A bind-mounted single file (docker -v cfg.json:/etc/...) cannot be
          // renamed over; writing it in place is the only option there.
          if (code !== 'EBUSY' && code !== 'EXDEV') throw err
          await unlink(tmp).catch(() => undefined)
          sig = await writeInPlace(target, parts)
        }
      } finally {
        await fh.close()
      }
      await syncDir(dir)
      return sig
    } catch (err) {
      await unlink(tmp).catch(() => undefined)
      throw storeError(`cannot write ${this.location}`, err)
    }
  }
}

interface WatchCursor {
  /** Revision last passed to onChange; null before the first report. */
  revision: string | null
  /** Key of the last reported problem, so one bad content is reported once. */
  bad: string | null
}

function report(seen: WatchCursor, handlers: WatchHandlers, key: string, err: BalancerError): void {
  if (seen.bad === key) return
  seen.bad = key
  handlers.onError(err)
}

function safeOnError(handlers: WatchHandlers, err: unknown): void {
  try {
    handlers.onError(err instanceof Error ? err : new Error(String(err)))
  } catch {
    // The owner's error handler itself failed; nothing is left to tell.
  }
}

async function writeInPlace(path: string, parts: readonly Buffer[]): Promise<string> {
  const fh = await open(path, 'r+')
  try {
    await fh.truncate(0)
    await writeAll(fh, parts)
    await fh.sync()
    return statSignature(await fh.stat({ bigint: true }))
  } finally {
    await fh.close()
  }
}

/** Writes every part from offset 0 (writev, again for what a short write left). */
async function writeAll(fh: FileHandle, parts: readonly Buffer[]): Promise<void> {
  let pos = 0
  let rest = [...parts]
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos)
    pos += bytesWritten
    let n = bytesWritten
    while (rest.length > 0 && n >= (rest[0] as Buffer).length) n -= (rest.shift() as Buffer).length
    if (n > 0) rest[0] = (rest[0] as Buffer).subarray(n)
    rest = rest.filter((b) => b.length > 0)
  }
}

async function syncDir(dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch (err) {
    // Some platforms and file systems cannot open or fsync a directory.
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES') throw err
  } finally {
    await fh?.close()
  }
}

function asBalancerError(err: unknown): BalancerError {
  if (err instanceof BalancerError) return err
  return storeError('config store failure', err)
}

function storeError(what: string, err: unknown): BalancerError {
  if (err instanceof BalancerError) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new BalancerError(ErrorCode.StoreUnavailable, `${what}: ${detail}`)
}
