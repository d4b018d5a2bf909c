// A FIFO async mutex for one process. Stores use it to serialise their
// read-modify-write cycles and watch re-reads, so a precondition checked inside
// a mutation is atomic with the write and a watcher never reports a stale read
// after a newer write.

export class AsyncLock {
  #tail: Promise<unknown> = Promise.resolve()

  /** Runs fn after every earlier run() settled; a failure does not block later runs. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(fn)
    this.#tail = result.catch(() => undefined)
    return result
  }
}
