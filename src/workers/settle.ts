// One memory-reducing garbage collection once a worker has started and
// applied its first snapshot.
//
// Start-up leaves garbage behind (the module loader's work for ~80 modules,
// the first compile and apply) and a young generation grown to its cap by
// it; V8 collects that garbage but keeps the pages, so a worker at rest
// would hold them until load made it collect again. A "last resort"
// collection (what V8 runs under memory pressure) returns them: measured
// here, ~4 MiB of RSS per worker. It runs once, before any client is
// served by this worker, and takes a few milliseconds.
//
// V8 offers it through `gc()`, which only the --expose-gc flag makes:
// turned on just to take the function from a fresh context, then off again,
// because V8's flags are part of the compile cache's key (bin/balancer.js):
// left on, every module loaded afterwards would miss the cache.

let done = false

export function settleOnce(): void {
  if (done) return
  done = true
  const v8 = process.getBuiltinModule('node:v8')
  const vm = process.getBuiltinModule('node:vm')
  v8.setFlagsFromString('--expose-gc')
  let gc: ((o: object) => void) | undefined
  try {
    gc = vm.runInNewContext('gc') as (o: object) => void
  } finally {
    v8.setFlagsFromString('--no-expose-gc')
  }
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}
