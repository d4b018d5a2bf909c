// The embedded default store: one JSON file (comments and the seed's loose
// forms accepted on read, one canonical form written back), and beside it,
// once the file is large, a journal of the writes not yet folded into it.
//
// Durability: a write is acknowledged only once it is on disk. Below
// journalFromBytes (1 MiB: about 100 servers of 10 routes) a write replaces
// the file: a temporary file in the same directory, fsynced, renamed over
// the target, the directory fsynced. From that size on, a write appends one
// record to `<config>.journal` (the servers it changed, file-journal.ts) and
// fdatasyncs it: at 10,000 routes that is 10 KiB synced instead of 10 MiB.
// The journal is folded into the file off the request path: after a quiet
// time (500 ms), or at once in the background after 100 records or 8 MiB
// (the file written whole as above, then the folded records dropped from
// the journal). Load replays the journal over the file; close folds it.
//
// Hand edits: update() checks the file (and the journal) under the lock
// before mutating, so an edit made since the last read is the base of the
// next write, never lost. The check is the files' signatures (inode, size,
// mtime, ctime: any write or rename changes it), not their text. While a
// journal is pending the file lacks the writes in it; a hand edit of the
// file then wins: the file is what an operator edits, and saving it
// replaces the configuration whole, as it always did. The journal's records
// no longer apply to it (their base revision is gone): they are renamed to
// `<config>.journal.discarded` for inspection, and not replayed. The
// window is the quiet time after the last API write.
//
// A file bind-mounted on its own (its directory on another device) takes
// every write whole: a journal beside it would live in the container's
// layer and be lost with it.
//
// Several balancers may share one file. Every read-check-write (update,
// folds, close's fold, and the reads of load and watch, which may set a
// journal aside) holds the in-process lock and, inside it, flock(2) on
// `<config>.lock` (file-lock.ts): the check then sees what another process
// wrote (a new file is read again, records it appended are replayed) and
// the mutation applies on top of it, so two writers through two processes
// never silently overwrite each other, as with the KV stores.

import { readFile, stat, unlink } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { sameValidConfig, validConfigHash, validConfigParts } from '../model/canonical.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { EMPTY_CONFIG, parseConfigText } from '../model/parse.ts'
import { decodeJournal, encodeRecord, JournalFile, readJournal, replay } from './file-journal.ts'
import { commitFile, prepareFile, storeError, syncDir } from './file-replace.ts'
import { fileSignature, watchFileChanges } from './file-watch.ts'
import { FileLock } from './file-lock.ts'
import { AsyncLock } from './lock.ts'
import type { ConfigStore, Mutation, StoreState, WatchHandlers } from './store.ts'
import { FileShared } from './shared-file.ts'
import type { SharedSpace } from './shared.ts'

export interface FileStoreOptions {
  /** Stat poll period of watch(), the fallback when fs.watch misses a change. Default 500 ms. */
  pollMs?: number
  /** Quiet time before a burst of file events becomes one reload. Default 50 ms. */
  debounceMs?: number
  /** From this file size on, writes go through the journal. Default 1 MiB. */
  journalFromBytes?: number
  /** The journal is folded into the file this long after the last write. Default 500 ms. */
  foldQuietMs?: number
  /** ...or at once, in the background, from this many records. Default 100. */
  foldRecords?: number
  /** ...or from this many bytes; at 4 times this, a write folds it before it is answered. Default 8 MiB. */
  foldBytes?: number
  /** A write waits this long for another process's lock on the file, then fails with E_STORE_UNAVAILABLE. Default 10 s. */
  lockTimeoutMs?: number
  /** Told once when writes cannot be serialized with other processes (no node:ffi, no lock file). Default: a process warning. */
  onNotice?: (message: string) => void
}

const EMPTY_REVISION = validConfigHash(EMPTY_CONFIG)

/** The files' signatures when last read or written, the state they hold, and the file's size. */
interface Known {
  sig: string
  jsig: string
  state: StoreState
  size: number
}

export class FileStore implements ConfigStore {
  readonly kind = 'file'
  readonly location: string
  readonly #dir: string
  readonly #base: string
  readonly #pollMs: number
  readonly #debounceMs: number
  readonly #journalFrom: number
  readonly #foldQuietMs: number
  readonly #foldRecords: number
  readonly #foldBytes: number
  readonly #lock = new AsyncLock()
  readonly #flock: FileLock
  readonly #journal: JournalFile
  #known: Known | null = null
  #shared: FileShared | null = null
  /** false: the file is a mount point of its own, every write is whole. null: not known yet. */
  #journaled: boolean | null = null
  #timer: NodeJS.Timeout | null = null
  #folding: Promise<void> | null = null
  /** A background fold failed: the next write folds first, and fails with it if it fails again. */
  #foldFailed = false
  #closed = false

  constructor(path: string, opts: FileStoreOptions = {}) {
    this.location = resolve(path)
    this.#dir = dirname(this.location)
    this.#base = basename(this.location)
    this.#pollMs = opts.pollMs ?? 500
    this.#debounceMs = opts.debounceMs ?? 50
    this.#journalFrom = opts.journalFromBytes ?? 1024 * 1024
    this.#foldQuietMs = opts.foldQuietMs ?? 500
    this.#foldRecords = opts.foldRecords ?? 100
    this.#foldBytes = opts.foldBytes ?? 8 * 1024 * 1024
    this.#journal = new JournalFile(`${this.location}.journal`)
    this.#flock = new FileLock(this.location, {
      timeoutMs: opts.lockTimeoutMs ?? 10_000,
      onNotice: opts.onNotice ?? ((message) => process.emitWarning(message, 'BalancerWarning')),
    })
  }

  /** fn under the in-process lock and, inside it, the lock other processes sharing the file take. */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(() => this.#flock.run(fn))
  }

  /** A missing file is the empty config (the file is created by the first write). */
  load(): Promise<StoreState> {
    return this.#locked(() => this.#current())
  }

  update(mutate: Mutation): Promise<StoreState> {
    return this.#locked(async () => {
      const current = await this.#current()
      const next = mutate(current.config)
      // The same canonical text (compared server by server): nothing to write.
      if (sameValidConfig(current.config, next)) return current
      // The canonical text of a ValidConfig parses back to the same config
      // (test/model/golden.test.ts), so the config is kept, not re-read.
      const state = { config: next, revision: validConfigHash(next) }
      const known = this.#known as Known
      if (!(await this.#journalWanted(known))) {
        const parts = validConfigParts(next)
        const sig = await this.#write(parts)
        // Only a file that became its own mount point since has records here: the file now holds them all.
        if (this.#journal.records.length > 0) await this.#journal.remove(this.#syncDir).catch((err: unknown) => Promise.reject(storeError(`cannot remove ${this.#journal.path}`, err)))
        this.#known = { sig, jsig: await fileSignature(this.#journal.path), state, size: byteLength(parts) }
        return state
      }
      // Before appending: a fold that fails here fails this write, with nothing written.
      if (this.#foldFailed || this.#journal.size >= 4 * this.#foldBytes) await this.#foldNow()
      const rec = encodeRecord(current.config, current.revision, next, state.revision)
      let jsig: string
      try {
        jsig = await this.#journal.append(rec, await this.#mode(), this.#syncDir)
      } catch (err) {
        throw storeError(`cannot write ${this.#journal.path}`, err)
      }
      const k = this.#known as Known
      this.#known = { sig: k.sig, jsig, state, size: k.size }
      this.#schedule()
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
      void this.#locked(() => this.#check(seen, handlers)).catch((err: unknown) => {
        // A handler threw; the watcher keeps running and the failure is reported once here.
        safeOnError(handlers, err)
      })
    }
    const common = { dir: this.#dir, pollMs: this.#pollMs, debounceMs: this.#debounceMs, signal, onTrigger: check }
    watchFileChanges({ ...common, base: this.#base, path: this.location })
    // Another process sharing the file store appends to the journal without touching the file.
    watchFileChanges({ ...common, base: basename(this.#journal.path), path: this.#journal.path })
    if (!signal.aborted) check()
  }

  /** Beside the file: `<config>.d/` (store/shared-file.ts). */
  shared(): SharedSpace {
    this.#shared ??= new FileShared(this.location, { pollMs: this.#pollMs })
    return this.#shared
  }

  /** Waits for a write in progress and folds the journal, so the file alone holds the configuration. */
  async close(): Promise<void> {
    // Watchers stop with their AbortSignal.
    this.#stopTimer()
    await this.#shared?.close()
    await this.#folding
    await this.#lock.run(async () => {
      this.#closed = true
      // A fold that fails (or finds the lock held too long) leaves the journal, synced: the next load replays it.
      // Under the lock, what another process appended since is read first, and folded with the rest.
      await this.#flock
        .run(async () => {
          await this.#current()
          if (this.#journal.records.length > 0) await this.#foldNow()
        })
        .catch(() => undefined)
      await this.#journal.close()
      await this.#flock.close()
    })
  }

  // Runs under the lock and calls the handlers inside it, so a report can never
  // overtake a write that finished after the read it is based on.
  async #check(seen: WatchCursor, handlers: WatchHandlers): Promise<void> {
    const sig = await fileSignature(this.location)
    if (sig === 'error:ENOENT' && seen.revision !== null && seen.revision !== EMPTY_REVISION) {
      const msg = `${this.location} was removed; the last good configuration stays in use`
      report(seen, handlers, 'missing', new BalancerError(ErrorCode.StoreUnavailable, msg))
      return
    }
    let state: StoreState
    try {
      state = await this.#current()
    } catch (err) {
      const e = asBalancerError(err)
      report(seen, handlers, `bad:${e.code}:${e.message}`, e)
      return
    }
    // After an error, a valid read is reported even with an unchanged revision
    // so the owner can clear the error it is showing.
    if (state.revision === seen.revision && seen.bad === null) return
    seen.revision = state.revision
    seen.bad = null
    handlers.onChange(state)
  }

  /**
   * The store's state: the known one while the file's and the journal's
   * signatures are the ones read or written last, else read again. The
   * signatures are taken before the read, so a change during the read makes
   * the next check read again.
   */
  async #current(): Promise<StoreState> {
    const sig = await fileSignature(this.location)
    const jsig = await fileSignature(this.#journal.path)
    const k = this.#known
    if (k !== null && k.sig === sig && k.jsig === jsig) return k.state
    return this.#read(sig, jsig)
  }

  /** Reads the file and replays the journal over it; the result becomes the known state. */
  async #read(sig: string, jsig: string, retries = 3): Promise<StoreState> {
    // Another process may have replaced or removed the journal since: the next append opens the file there now.
    await this.#journal.close()
    const text = await this.#readText()
    const base = this.#parse(text, this.location)
    const size = text === null ? 0 : Buffer.byteLength(text)
    const path = this.#journal.path
    const bytes = await readJournal(path)
    let state = base
    let jsigNow = jsig
    const d = bytes === null ? null : decodeJournal(bytes, path)
    const r =
      d === null || d.records.length === 0
        ? null
        : replay(
            base.config,
            base.revision,
            d.records.map((x) => x.record),
            path,
          )
    if (d === null) this.#journal.adopt([], 0)
    else if (r === null) {
      // Another process sharing the store folded between the two reads (a new
      // file, then its journal emptied): read both again before judging.
      const sigNow = await fileSignature(this.location)
      if (d.records.length > 0 && sigNow !== sig && retries > 0) return this.#read(sigNow, await fileSignature(path), retries - 1)
      if (d.records.length > 0) {
        // The file is no state the journal leads from: edited by hand. The file wins.
        await this.#journal.setAside(this.#syncDir).catch((err: unknown) => Promise.reject(storeError(`cannot set ${path} aside`, err)))
        jsigNow = await fileSignature(path)
      } else this.#journal.adopt([], d.validBytes) // only a torn record, never acknowledged
    } else {
      state = r
      const all = bytes as Buffer
      this.#journal.adopt(
        d.records.map((x, i) => all.subarray(i === 0 ? 0 : (d.records[i - 1] as { end: number }).end, x.end)),
        d.validBytes,
      )
    }
    this.#known = { sig, jsig: jsigNow, state, size }
    if (this.#journal.records.length > 0) this.#schedule()
    return state
  }

  /** Parses text read from `where`. */
  #parse(text: string | null, where: string): StoreState {
    let config
    try {
      config = text === null ? EMPTY_CONFIG : parseConfigText(text)
    } catch (err) {
      const e = asBalancerError(err)
      throw new BalancerError(e.code, `${where}: ${e.message}`, e.problems)
    }
    return { config, revision: validConfigHash(config) }
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

  /** Whether this write goes to the journal: records are pending, or the file is large, and the file is no mount point of its own. */
  async #journalWanted(known: Known): Promise<boolean> {
    if (this.#journal.records.length === 0 && known.size < this.#journalFrom) return false
    this.#journaled ??= await sameDevice(this.location, this.#dir)
    return this.#journaled === true
  }

  /** Folds pending records soon: at once past the thresholds, else after the quiet time. */
  #schedule(): void {
    if (this.#closed) return
    this.#stopTimer()
    if (this.#journal.records.length >= this.#foldRecords || this.#journal.size >= this.#foldBytes) {
      void this.#fold()
      return
    }
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#fold()
    }, this.#foldQuietMs)
    // Pending records are synced already: the timer must not keep a process alive.
    this.#timer.unref()
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  /** One background fold at a time; its failure is kept for the next write (#foldFailed), which folds first. */
  #fold(): Promise<void> {
    this.#folding ??= this.#foldInBackground()
      .then(
        () => {
          this.#foldFailed = false
        },
        () => {
          this.#foldFailed = true
        },
      )
      .finally(() => {
        this.#folding = null
        // Records appended while it ran wait for the next one.
        if (!this.#foldFailed && this.#journal.records.length > 0) this.#schedule()
      })
    return this.#folding
  }

  /**
   * Takes the state under the lock, writes and syncs the whole file outside
   * it (writes go on appending meanwhile), then under the lock renames it
   * over the file and drops the records it holds, unless the file, the
   * journal or its generation changed since (a hand edit: the next read
   * deals with it).
   */
  async #foldInBackground(): Promise<void> {
    const cap = await this.#locked(async () => {
      if (this.#closed) return null
      await this.#current()
      const known = this.#known
      if (known === null || this.#journal.records.length === 0) return null
      return { known, n: this.#journal.records.length, generation: this.#journal.generation }
    })
    if (cap === null) return
    const prepared = await prepareFile(this.location, validConfigParts(cap.known.state.config))
    let renamed = false
    try {
      await this.#locked(async () => {
        const known = this.#known
        if (this.#closed || known === null || this.#journal.generation !== cap.generation) return
        if ((await fileSignature(this.location)) !== known.sig || (await fileSignature(this.#journal.path)) !== known.jsig) return
        renamed = true
        const sig = await commitFile(this.location, prepared)
        const jsig = await this.#dropFolded(cap.n)
        this.#known = { sig, jsig, state: known.state, size: prepared.size }
      })
    } finally {
      if (!renamed) await unlink(prepared.tmp).catch(() => undefined)
    }
  }

  /** Under the lock: writes the known state whole and empties the journal. */
  async #foldNow(): Promise<void> {
    const known = this.#known
    if (known !== null && this.#journal.records.length > 0) {
      const prepared = await prepareFile(this.location, validConfigParts(known.state.config))
      const sig = await commitFile(this.location, prepared)
      const jsig = await this.#dropFolded(this.#journal.records.length)
      this.#known = { sig, jsig, state: known.state, size: prepared.size }
    }
    this.#foldFailed = false
  }

  async #dropFolded(n: number): Promise<string> {
    try {
      return await this.#journal.dropFirst(n, await this.#mode(), this.#syncDir)
    } catch (err) {
      throw storeError(`cannot write ${this.#journal.path}`, err)
    }
  }

  /** The configuration file's permission bits, which the journal takes (0644 before the file exists). */
  async #mode(): Promise<number> {
    return stat(this.location).then(
      (s) => s.mode & 0o777,
      () => 0o644,
    )
  }

  readonly #syncDir = (): Promise<void> => syncDir(this.#dir)

  /** Writes the parts durably; resolves with the signature of the file written. */
  async #write(parts: readonly Buffer[]): Promise<string> {
    return commitFile(this.location, await prepareFile(this.location, parts))
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

function byteLength(parts: readonly Buffer[]): number {
  let n = 0
  for (const p of parts) n += p.length
  return n
}

/** Whether the file (when it exists) is on its directory's device: not a mount point of its own. */
async function sameDevice(path: string, dir: string): Promise<boolean | null> {
  try {
    const [f, d] = await Promise.all([stat(path), stat(dir)])
    return f.dev === d.dev
  } catch {
    return null
  }
}

function asBalancerError(err: unknown): BalancerError {
  if (err instanceof BalancerError) return err
  return storeError('config store failure', err)
}
