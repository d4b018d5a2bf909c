// A setting Node has no option for, made on a server context's SSL_CTX
// through node:ffi (OpenSSL's own functions, exported by the node binary):
// one TLS 1.3 session ticket after a full handshake instead of OpenSSL's
// two. Each ticket is a ticket-key callback, an encryption and a record,
// about 2% of a full handshake's CPU (perf); one is what a client needs to
// resume its next connection, and that connection gets a new one.
//
// Reaching the SSL_CTX: Node keeps the pointer to itself (`context._external`
// is a V8 External, which ffi refuses), and OpenSSL's configuration file
// has no Mode or per-context hook that applies to contexts made after the
// process started. OpenSSL hands the pointer out itself: a "new" callback
// registered with CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX) is
// called by SSL_CTX_new with the context being made (its `parent`). The
// callback is registered only around one createSecureContext call on this
// thread, its index freed right after; the pointer is used only if exactly
// one context was made meanwhile and it reads back the session timeout the
// caller just set. Anything else (no node:ffi, a symbol missing, another
// OpenSSL) leaves the context as Node made it: correct, one ticket more.
//
// Node already sets SSL_MODE_RELEASE_BUFFERS on every connection (TLSWrap;
// checked with SSL_get_mode on live connections): OpenSSL's record buffers
// are freed while a connection idles, as in nginx. Nothing to set there.

/** CRYPTO_EX_INDEX_SSL_CTX (openssl/crypto.h). */
const EX_INDEX_SSL_CTX = 1

interface Lib {
  getFunctions(defs: Record<string, { arguments: readonly string[]; return: string }>): Record<string, (...args: unknown[]) => unknown>
  registerCallback(sig: { arguments: readonly string[]; return: string }, fn: (...args: unknown[]) => void): bigint
}

interface Calls {
  newIndex(cb: bigint): number
  freeIndex(idx: number): void
  getTimeout(ctx: bigint): bigint
  setNumTickets(ctx: bigint, n: bigint): number
  /** The parent of the callback's current capture: contexts made while armed. */
  made: bigint[]
  callback: bigint
}

let calls: Calls | null | undefined

function load(): Calls | null {
  if (process.platform !== 'linux') return null
  const emit = process.emitWarning
  // node:ffi's ExperimentalWarning tells an operator nothing: without it this file does nothing.
  process.emitWarning = () => {}
  try {
    const ffi = process.getBuiltinModule('node:ffi') as { DynamicLibrary: new (path: null) => Lib } | undefined
    if (ffi === undefined) return null
    const lib = new ffi.DynamicLibrary(null)
    const f = lib.getFunctions({
      CRYPTO_get_ex_new_index: { arguments: ['int32', 'int64', 'pointer', 'pointer', 'pointer', 'pointer'], return: 'int32' },
      CRYPTO_free_ex_index: { arguments: ['int32', 'int32'], return: 'int32' },
      SSL_CTX_get_timeout: { arguments: ['pointer'], return: 'int64' },
      SSL_CTX_set_num_tickets: { arguments: ['pointer', 'uint64'], return: 'int32' },
    })
    const made: bigint[] = []
    // new_func(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
    const callback = lib.registerCallback({ arguments: ['pointer', 'pointer', 'pointer', 'int32', 'int64', 'pointer'], return: 'void' }, (parent) => {
      made.push(parent as bigint)
    })
    const newIndex = f.CRYPTO_get_ex_new_index as (cls: number, argl: bigint, argp: bigint, n: bigint, d: bigint, fr: bigint) => number
    const freeIndex = f.CRYPTO_free_ex_index as (cls: number, idx: number) => number
    return {
      newIndex: (cb) => newIndex(EX_INDEX_SSL_CTX, 0n, 0n, cb, 0n, 0n),
      freeIndex: (idx) => void freeIndex(EX_INDEX_SSL_CTX, idx),
      getTimeout: f.SSL_CTX_get_timeout as (ctx: bigint) => bigint,
      setNumTickets: f.SSL_CTX_set_num_tickets as (ctx: bigint, n: bigint) => number,
      made,
      callback,
    }
  } catch {
    return null
  } finally {
    process.emitWarning = emit
  }
}

/**
 * Runs `make` (which creates one SecureContext with session timeout
 * `timeoutSeconds`) and sets that context to send one TLS 1.3 session
 * ticket per full handshake. Returns what `make` returned, and whether the
 * setting was made.
 */
export function withOneTicket<T>(timeoutSeconds: number, make: () => T): { value: T; tuned: boolean } {
  if (calls === undefined) calls = load()
  const c = calls
  if (c === null) return { value: make(), tuned: false }
  c.made.length = 0
  const idx = c.newIndex(c.callback)
  let value: T
  try {
    value = make()
  } finally {
    if (idx >= 0) c.freeIndex(idx)
  }
  const ctx = c.made.length === 1 ? (c.made[0] as bigint) : 0n
  c.made.length = 0
  if (ctx === 0n || c.getTimeout(ctx) !== BigInt(timeoutSeconds)) return { value, tuned: false }
  return { value, tuned: c.setNumTickets(ctx, 1n) === 1 }
}
