// Settings Node has no option for, made on a server context's SSL_CTX
// through node:ffi (OpenSSL's own functions, exported by the node binary):
//
// - One TLS 1.3 session ticket after a full handshake instead of OpenSSL's
//   two. Each ticket is an encryption and a record, about 2% of a full
//   handshake's CPU (perf); one is what a client needs to resume its next
//   connection, and that connection gets a new one.
// - Session tickets sealed with OpenSSL's own ticket keys, set from ours
//   (tickets.ts), instead of Node's ticket-key callback. Node's callback
//   answers "valid, keep it" for every ticket it decrypts, and in TLS 1.3
//   OpenSSL then sends no new ticket on the resumed connection. Clients use
//   a TLS 1.3 ticket once (RFC 8446, C.4; OpenSSL's and browsers' clients
//   do), so each resumed connection left its client without a ticket and
//   its next connection made a full handshake: every second one. With
//   OpenSSL's keys a resumed TLS 1.3 connection gets a new ticket, as with
//   nginx; the encryption stays in C (AES-256-CBC, HMAC-SHA-256), with no
//   call into Node per ticket.
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
// caller just set. The pointer is kept beside the context's JavaScript
// object (a WeakMap), so it is used only while that object, and so the
// SSL_CTX, is alive. Anything else (no node:ffi, a symbol missing, another
// OpenSSL) leaves the context as Node made it: correct, one ticket more,
// and resumed TLS 1.3 connections without a new ticket.
//
// Node already sets SSL_MODE_RELEASE_BUFFERS on every connection (TLSWrap;
// checked with SSL_get_mode on live connections): OpenSSL's record buffers
// are freed while a connection idles, as in nginx. Nothing to set there.

/** CRYPTO_EX_INDEX_SSL_CTX (openssl/crypto.h). */
const EX_INDEX_SSL_CTX = 1
/** SSL_CTX_ctrl and SSL_CTX_callback_ctrl commands (openssl/ssl.h). */
const CTRL_SET_TICKET_KEYS = 59
const CTRL_SET_TICKET_KEY_CB = 72

/** OpenSSL's ticket keys: a 16-byte name, a 32-byte HMAC-SHA-256 key, a 32-byte AES-256 key. */
export const TICKET_KEY_BYTES = 80

interface Lib {
  getFunctions(defs: Record<string, { arguments: readonly string[]; return: string }>): Record<string, (...args: unknown[]) => unknown>
  registerCallback(sig: { arguments: readonly string[]; return: string }, fn: (...args: unknown[]) => void): bigint
}

interface Calls {
  newIndex(cb: bigint): number
  freeIndex(idx: number): void
  getTimeout(ctx: bigint): bigint
  setNumTickets(ctx: bigint, n: bigint): number
  /** SSL_CTX_set_tlsext_ticket_keys: 1 when taken. */
  setTicketKeys(ctx: bigint, keys: Buffer): bigint
  /** The length SSL_CTX_set_tlsext_ticket_keys wants (keys NULL). */
  ticketKeysLength(ctx: bigint): bigint
  /** Removes Node's ticket-key callbacks (both kinds), so OpenSSL's own keys are used. */
  dropTicketCallbacks(ctx: bigint): void
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
      SSL_CTX_ctrl: { arguments: ['pointer', 'int32', 'int64', 'buffer'], return: 'int64' },
      SSL_CTX_callback_ctrl: { arguments: ['pointer', 'int32', 'pointer'], return: 'int64' },
      SSL_CTX_set_tlsext_ticket_key_evp_cb: { arguments: ['pointer', 'pointer'], return: 'int32' },
    })
    // The same function with a NULL argument, for the length query.
    const query = lib.getFunctions({ SSL_CTX_ctrl: { arguments: ['pointer', 'int32', 'int64', 'pointer'], return: 'int64' } })
    const made: bigint[] = []
    // new_func(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
    const callback = lib.registerCallback({ arguments: ['pointer', 'pointer', 'pointer', 'int32', 'int64', 'pointer'], return: 'void' }, (parent) => {
      made.push(parent as bigint)
    })
    const newIndex = f.CRYPTO_get_ex_new_index as (cls: number, argl: bigint, argp: bigint, n: bigint, d: bigint, fr: bigint) => number
    const freeIndex = f.CRYPTO_free_ex_index as (cls: number, idx: number) => number
    const ctrl = f.SSL_CTX_ctrl as (ctx: bigint, cmd: number, larg: bigint, parg: Buffer) => bigint
    const ctrlNull = query.SSL_CTX_ctrl as (ctx: bigint, cmd: number, larg: bigint, parg: bigint) => bigint
    const callbackCtrl = f.SSL_CTX_callback_ctrl as (ctx: bigint, cmd: number, fp: bigint) => bigint
    const setEvpCb = f.SSL_CTX_set_tlsext_ticket_key_evp_cb as (ctx: bigint, fp: bigint) => number
    return {
      newIndex: (cb) => newIndex(EX_INDEX_SSL_CTX, 0n, 0n, cb, 0n, 0n),
      freeIndex: (idx) => void freeIndex(EX_INDEX_SSL_CTX, idx),
      getTimeout: f.SSL_CTX_get_timeout as (ctx: bigint) => bigint,
      setNumTickets: f.SSL_CTX_set_num_tickets as (ctx: bigint, n: bigint) => number,
      setTicketKeys: (ctx, keys) => ctrl(ctx, CTRL_SET_TICKET_KEYS, BigInt(keys.length), keys),
      ticketKeysLength: (ctx) => ctrlNull(ctx, CTRL_SET_TICKET_KEYS, 0n, 0n),
      dropTicketCallbacks(ctx) {
        setEvpCb(ctx, 0n)
        callbackCtrl(ctx, CTRL_SET_TICKET_KEY_CB, 0n)
      },
      made,
      callback,
    }
  } catch {
    return null
  } finally {
    process.emitWarning = emit
  }
}

/** The SSL_CTX of each context made here whose tickets use OpenSSL's keys, by the context's native object. */
const ownKeys = new WeakMap<object, bigint>()

/**
 * Runs `make` (which creates one SecureContext with session timeout
 * `timeoutSeconds`) and sets that context to send one TLS 1.3 session
 * ticket per full handshake and to seal tickets with OpenSSL's own keys,
 * set to `ticketKey` (TICKET_KEY_BYTES). Returns what `make` returned, and
 * whether the settings were made; `native(value)` is the object
 * setTicketKey is given later for this context.
 */
export function tunedContext<T>(timeoutSeconds: number, ticketKey: Buffer, make: () => T, native: (value: T) => object): { value: T; tuned: boolean } {
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
  if (c.setNumTickets(ctx, 1n) !== 1) return { value, tuned: false }
  // Node's callback stays in charge unless OpenSSL took our key: tickets
  // sealed with OpenSSL's random one would not resume on another worker.
  if (ticketKey.length !== TICKET_KEY_BYTES || c.ticketKeysLength(ctx) !== BigInt(TICKET_KEY_BYTES) || c.setTicketKeys(ctx, ticketKey) !== 1n) return { value, tuned: false }
  c.dropTicketCallbacks(ctx)
  ownKeys.set(native(value), ctx)
  return { value, tuned: true }
}

/**
 * Sets the key `context` seals and opens session tickets with from now on:
 * OpenSSL's keys where tunedContext set them up, else Node's (its first 48
 * bytes: Node's name, HMAC and AES parts).
 */
export function setTicketKey(context: { setTicketKeys(keys: Buffer): void }, key: Buffer): void {
  const ctx = ownKeys.get(context)
  if (ctx !== undefined && calls) calls.setTicketKeys(ctx, key)
  else context.setTicketKeys(key.subarray(0, 48))
}
