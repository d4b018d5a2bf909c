// One memory-reducing garbage collection and a trim of malloc's heap, once
// a worker has started and applied its first snapshot.
//
// Start-up leaves garbage behind (the module loader's work for ~80 modules,
// the first compile and apply) and a young generation grown to its cap by
// it; V8 collects that garbage but keeps the pages, so a worker at rest
// would hold them until load made it collect again. A "last resort"
// collection (what V8 runs under memory pressure) returns them: about 2 MiB
// of RSS per worker measured here. It runs once, before this worker has
// served a client, and takes a few milliseconds.
//
// V8 offers it through `gc()`, which the --expose-gc flag installs; the
// workers get it (group.ts workerExecArgv). V8's flags are part of the
// compile cache's key, so the workers' code is cached apart from the main
// process's (Node keeps one directory per flag set).
//
// Then glibc's malloc_trim(0) returns what the collection and start-up
// freed in malloc's heap (compile and parse buffers): 1.4 MiB more.

import { mallocTrim } from '../engine/libc.ts'

type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void

let done = false

export function settleOnce(): void {
  if (done) return
  done = true
  const gc = (globalThis as { gc?: Gc }).gc
  gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  mallocTrim()?.()
}
