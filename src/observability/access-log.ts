// The access log writer: one JSON line per request, off the request path.
// write() only appends a string to an in-memory batch; the batch goes to the
// file (every FLUSH_MS, or sooner once BATCH_BYTES wait) with one fs.write()
// at a time, which runs on libuv's thread pool, so a
// slow or stuck disk holds a pool thread, never the event loop. When the
// batch waiting for the disk passes MAX_PENDING_BYTES, new lines are dropped
// and counted (balancer_access_log_dropped_lines_total) instead of growing
// memory or waiting. A failing file (full disk, read-only file system, a
// path that cannot be opened) drops its lines, counted, and reports the
// failure once until a write succeeds again.
//
// Own code rather than pino's destination (sonic-boom): sonic-boom's
// asynchronous mode grows its buffer without bound on a stuck disk (or, with
// a limit, drops silently), and its error handling ends the stream; here a
// line is either written or counted as dropped, and the file is retried.
//
// The file is opened in append mode: with several workers, each has its own
// descriptor on the same file and every write() is a batch of whole lines
// appended atomically, so lines never interleave mid-line. `-` writes to
// standard output in batches of at most PIPE_BUF bytes, which a pipe keeps
// whole beside the process log's own lines.

import { close, open, write } from 'node:fs'

const MAX_PENDING_BYTES = 8 * 1024 * 1024
/**
 * A batch goes to the disk once this much is waiting, or FLUSH_MS after its
 * first line: one write (and one thread-pool round trip) per many lines,
 * rather than per event-loop turn, which under load cost more than the lines.
 */
const BATCH_BYTES = 64 * 1024
const FLUSH_MS = 100
/** Linux PIPE_BUF: writes up to this size to a pipe are never split. */
const PIPE_BUF = 4096
/** A file that could not be opened is tried again at most this often. */
const REOPEN_MS = 1000

export interface AccessLogOptions {
  /** A file path, or '-' for standard output. */
  target: string
  /** Fraction of requests logged, 0 < sample <= 1. */
  sample: number
  /** Called once when writing starts failing, and once with null when it works again. */
  onProblem(err: Error | null): void
}

export class AccessLog {
  readonly sample: number
  readonly target: string
  /** Lines written to the file. */
  lines = 0
  /** Lines dropped: the disk was too slow (MAX_PENDING_BYTES) or failing. */
  dropped = 0
  readonly #onProblem: (err: Error | null) => void
  #fd: number | null = null
  #pending: string[] = []
  #pendingBytes = 0
  #busy = false
  #timer: NodeJS.Timeout | null = null
  #failing = false
  #openAfter = 0
  #reopen = false
  #closed = false
  #idle: Array<() => void> = []
  readonly #flushLater = (): void => this.#flush()
  /** A batch this big is written at once (standard output writes at most PIPE_BUF at a time). */
  readonly #batchBytes: number

  constructor(o: AccessLogOptions) {
    this.target = o.target
    this.sample = o.sample
    this.#onProblem = o.onProblem
    if (o.target === '-') this.#fd = 1
    this.#batchBytes = o.target === '-' ? PIPE_BUF : BATCH_BYTES
  }

  write(line: string): void {
    if (this.#pendingBytes > MAX_PENDING_BYTES || this.#closed) {
      this.dropped++
      return
    }
    this.#pending.push(line)
    this.#pendingBytes += line.length + 1
    if (this.#busy) return
    if (this.#pendingBytes >= this.#batchBytes) this.#flush()
    else this.#later()
  }

  /** Closes the file and opens the path again (logrotate moved it); lines in between wait in the batch. */
  reopen(): void {
    if (this.target === '-') return
    this.#reopen = true
    this.#openAfter = 0
    if (!this.#busy) this.#flush()
  }

  /** Resolves when every line accepted so far has been written or dropped. */
  drained(): Promise<void> {
    if (!this.#busy && this.#pending.length === 0) return Promise.resolve()
    const p = new Promise<void>((resolve) => this.#idle.push(resolve))
    this.#flush()
    return p
  }

  /** Writes what is pending (waiting at most waitMs: a stuck disk must not hold up an exit), then closes the file. */
  async close(waitMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.drained(), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))])
    clearTimeout(timer)
    this.#closed = true
    const fd = this.#fd
    this.#fd = null
    if (fd !== null && fd !== 1) await new Promise<void>((resolve) => close(fd, () => resolve()))
  }

  /** Arms the batch timer for what is pending (nothing to do when a write is under way: its end looks again). */
  #later(): void {
    if (this.#busy || this.#timer !== null) return
    if (this.#pending.length === 0) {
      for (const w of this.#idle.splice(0)) w()
      return
    }
    this.#timer = setTimeout(this.#flushLater, FLUSH_MS)
    this.#timer.unref()
  }

  #flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#busy) return
    if (this.#pending.length === 0) {
      for (const w of this.#idle.splice(0)) w()
      return
    }
    this.#busy = true
    if (this.#reopen || this.#fd === null) return this.#open()
    const batch = this.#take()
    write(this.#fd, batch.text, null, 'utf8', (err) => this.#written(err, batch.lines))
  }

  /** The next batch: everything pending, or for standard output what fits in PIPE_BUF (at least one line). */
  #take(): { text: string; lines: number } {
    const all = this.#pending
    let n = all.length
    if (this.#fd === 1) {
      let bytes = 0
      n = 0
      while (n < all.length && (n === 0 || bytes + (all[n] as string).length + 1 <= PIPE_BUF)) bytes += (all[n++] as string).length + 1
    }
    const taken = n === all.length ? all : all.slice(0, n)
    this.#pending = n === all.length ? [] : all.slice(n)
    let text = taken.join('\n')
    text += '\n'
    this.#pendingBytes -= text.length
    return { text, lines: n }
  }

  #written(err: Error | null, lines: number): void {
    this.#busy = false
    if (err === null) {
      this.lines += lines
      if (this.#failing) {
        this.#failing = false
        this.#onProblem(null)
      }
    } else {
      this.dropped += lines
      this.#fail(err)
    }
    if (this.#pendingBytes >= this.#batchBytes || this.#idle.length > 0) this.#flush()
    else this.#later()
  }

  #fail(err: Error): void {
    if (this.#failing) return
    this.#failing = true
    this.#onProblem(err)
  }

  #open(): void {
    const now = Date.now()
    if (now < this.#openAfter) {
      // Still failing to open: what is pending is dropped, not kept for a file that may never come.
      this.dropped += this.#pending.length
      this.#pending = []
      this.#pendingBytes = 0
      this.#busy = false
      for (const w of this.#idle.splice(0)) w()
      return
    }
    const old = this.#fd
    this.#fd = null
    this.#reopen = false
    const opened = (err: Error | null, fd: number): void => {
      if (this.#closed) {
        if (err === null) close(fd, () => undefined)
        this.#busy = false
        return
      }
      if (err !== null) {
        this.#openAfter = Date.now() + REOPEN_MS
        this.#fail(err)
        this.#busy = false
        return this.#flush()
      }
      this.#fd = fd
      this.#busy = false
      this.#flush()
    }
    const go = (): void => open(this.target, 'a', 0o644, opened)
    if (old !== null && old !== 1) close(old, go)
    else go()
  }
}
