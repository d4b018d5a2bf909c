// Password hash checks for BasicAuth, off the serving thread: one worker
// thread per engine (verify-thread.ts), started at the first check and
// unref'd so it never keeps the process alive. Checks queue in the thread;
// at most MAX_PENDING wait, beyond that a check is refused at once (the
// caller answers 503): a flood of wrong passwords costs one core at most and
// never stalls the event loop. node:worker_threads loads with the first
// check, like the thread.

import type { Worker } from 'node:worker_threads'

const MAX_PENDING = 256

type Done = (ok: boolean) => void

export class Verifier {
  #worker: Worker | null = null
  #next = 1
  readonly #waiting = new Map<number, Done>()

  /** false when too many checks are waiting (done is not called); else done(ok) is called later, once. */
  verify(password: string, hash: string, done: Done): boolean {
    if (this.#waiting.size >= MAX_PENDING) return false
    const w = this.#worker ?? this.#start()
    const id = this.#next++
    this.#waiting.set(id, done)
    w.postMessage({ id, password, hash })
    return true
  }

  #start(): Worker {
    const { Worker } = process.getBuiltinModule('node:worker_threads')
    const w = new Worker(new URL('./verify-thread.ts', import.meta.url))
    w.unref()
    w.on('message', (m: { id: number; ok: boolean }) => {
      const done = this.#waiting.get(m.id)
      if (done === undefined) return
      this.#waiting.delete(m.id)
      done(m.ok === true)
    })
    // A dead thread fails what it held; the next check starts a new one.
    const fail = (): void => {
      if (this.#worker === w) this.#worker = null
      const held = [...this.#waiting.values()]
      this.#waiting.clear()
      for (const done of held) done(false)
    }
    w.on('error', fail)
    w.on('exit', fail)
    this.#worker = w
    return w
  }

  close(): void {
    const w = this.#worker
    this.#worker = null
    if (w !== null) void w.terminate()
  }
}
