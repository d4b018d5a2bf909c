// Loading C library functions through node:ffi (no compiled code: the C
// library's own functions, resolved in the running process). Shared by the
// engine (engine/libc.ts: accept4, setrlimit, mallopt) and the file store
// (store/file-lock.ts: flock), which must not import each other.
//
// node:ffi is experimental (Node 26.1+), disabled by --no-experimental-ffi
// and by the permission model without --allow-ffi. Every loader here
// returns null or undefined wherever it cannot be loaded or a symbol is
// missing; each caller then keeps to what Node does by itself.

/** The part of node:ffi used here. */
export interface Ffi {
  dlopen(path: null, defs: Record<string, { arguments: readonly string[]; return: string }>): { functions: Record<string, (...args: unknown[]) => unknown> }
  getInt32(ptr: bigint, offset?: number): number
}

/** node:ffi on Linux (the callers' constants are Linux's), without its warning; undefined elsewhere or where it is off. */
export function linuxFfi(): Ffi | undefined {
  return process.platform === 'linux' ? quietly(() => process.getBuiltinModule('node:ffi') as Ffi | undefined) : undefined
}

/**
 * One C library function loaded on its own, when first asked for (a C
 * library without it keeps the rest), typed by `wrap`; null where it
 * cannot be loaded.
 */
export function single<T>(name: string, def: { arguments: readonly string[]; return: string }, wrap: (fn: (...args: never[]) => unknown) => T): () => T | null {
  let got: T | null | undefined
  return () => {
    if (got !== undefined) return got
    got = null
    const ffi = linuxFfi()
    if (ffi === undefined) return got
    try {
      got = wrap(ffi.dlopen(null, { [name]: def }).functions[name] as (...args: never[]) => unknown)
    } catch {
      // a C library without it
    }
    return got
  }
}

/**
 * Loading node:ffi prints an ExperimentalWarning on every start; each use
 * is covered by its fallback, so the warning tells an operator nothing
 * they can act on.
 */
function quietly<T>(fn: () => T): T | undefined {
  const emit = process.emitWarning
  process.emitWarning = () => {}
  try {
    return fn()
  } catch {
    return undefined
  } finally {
    process.emitWarning = emit
  }
}
