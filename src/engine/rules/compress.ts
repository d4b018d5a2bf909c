// The compress group at run time, for every client protocol: which coding a
// request's Accept-Encoding takes (negotiate), whether a response head may
// be compressed (verdict), and the coder a compressed body streams through
// (Zip). Runs only for routes whose plan has a compress group.
//
// The coders are node:zlib's (gzip, brotli, zstd: Node's own, no addon),
// at fast settings: gzip level 5, brotli quality 4 and zstd level 3 with
// windows of 256 KiB (or the body's size when it is known and smaller), so
// one coder holds at most a few hundred KiB. Their work runs on libuv's thread pool, never on the event
// loop; a coder takes one body at a time, so one HTTP/1.1 connection keeps
// at most one pool thread busy, and an HTTP/2 connection compresses at most
// ZIP_STREAMS_PER_CONN of its streams at once (the others go as they are).
//
// Streaming with backpressure both ways: what the upstream sent in one read
// goes into the coder and is flushed out (so a response that trickles out
// reaches the client as it comes, not when a block fills); the coder's
// output goes to the client, and when the client cannot take more the coder
// is paused, its input fills, and the upstream is paused in turn. Nothing
// holds a whole body.
//
// node:zlib is taken with the first coder, not when the engine loads (it
// loads with every HTTP/1.1 connection's relay): 2 MiB of resident memory
// in a process that compresses nothing.

import type { BrotliCompress, Gzip, ZstdCompress } from 'node:zlib'

type Coder = Gzip | BrotliCompress | ZstdCompress
import type { CompressPlan, HeaderEditPlan } from '../../compiler/snapshot.ts'
import { Enc } from '../../compiler/snapshot.ts'

/** HTTP/2 streams of one client connection compressed at once; more are sent as they are. */
export const ZIP_STREAMS_PER_CONN = 4

export const ENC_NAME: readonly string[] = ['', 'gzip', 'br', 'zstd']

/**
 * The coding for a request whose Accept-Encoding fields (joined with `,`)
 * are `ae` (RFC 9110 §12.5.3): the offered coding with the highest q above
 * 0, `*` standing for any coding not named; among equal q, the plan's order
 * decides. None when the client accepts none of them.
 */
export function negotiate(plan: CompressPlan, ae: string): Enc {
  let qGzip = -1
  let qBr = -1
  let qZstd = -1
  let qAny = -1
  let at = 0
  const len = ae.length
  while (at < len) {
    let end = ae.indexOf(',', at)
    if (end < 0) end = len
    const semi = ae.indexOf(';', at)
    const nameEnd = semi >= 0 && semi < end ? semi : end
    const name = ae.slice(at, nameEnd).trim().toLowerCase()
    const q = nameEnd === end ? 1 : qValue(ae.slice(nameEnd + 1, end))
    at = end + 1
    if (q < 0) continue
    if (name === 'gzip' || name === 'x-gzip') qGzip = Math.max(qGzip, q)
    else if (name === 'br') qBr = Math.max(qBr, q)
    else if (name === 'zstd') qZstd = Math.max(qZstd, q)
    else if (name === '*') qAny = Math.max(qAny, q)
  }
  let best: Enc = Enc.None
  let bestQ = 0
  const encs = plan.encodings
  for (let i = 0; i < encs.length; i++) {
    const e = encs[i] as Enc
    const named = e === Enc.Gzip ? qGzip : e === Enc.Br ? qBr : qZstd
    const q = named >= 0 ? named : qAny > 0 ? qAny : 0
    if (q > bestQ) {
      best = e
      bestQ = q
    }
  }
  return best
}

/** The q of one element's parameters (`q=0.5`, other parameters ignored); -1 when malformed. */
function qValue(params: string): number {
  const m = /(?:^|;)\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*(?:;|$)/i.exec(params)
  if (m === null) return /(?:^|;)\s*q\s*=/i.test(params) ? -1 : 1
  const q = Number(m[1])
  return q <= 1 ? q : -1
}

/** What to do with a response: send it as it is, as it is with `Vary: Accept-Encoding` (another client would get it compressed), or compressed. */
export const Verdict = { Leave: 0, Vary: 1, Compress: 2 } as const

/** The fields of a response head the verdict reads ('' when absent); `length` -1 when unknown. */
export interface ZipHead {
  status: number
  contentType: string
  contentEncoding: string
  cacheControl: string
  length: number
}

/**
 * The verdict for a final response head to a request that negotiated
 * `accepted`; `head`: the request was HEAD, `bodyless`: no body follows
 * (204, 304, Content-Length 0).
 */
export function verdict(plan: CompressPlan, h: ZipHead, accepted: Enc, head: boolean, bodyless: boolean): number {
  const status = h.status
  if (status < 200 || status === 204 || status === 206 || status === 304) return Verdict.Leave
  if (h.contentEncoding !== '' && h.contentEncoding.trim().toLowerCase() !== 'identity') return Verdict.Leave
  if (!typeMatches(plan, h.contentType)) return Verdict.Leave
  if (h.cacheControl !== '' && /(?:^|[\s,])no-transform(?:$|[\s,])/i.test(h.cacheControl)) return Verdict.Leave
  if (h.length >= 0 && h.length < plan.minBytes) return Verdict.Leave
  if (head || bodyless || accepted === Enc.None) return Verdict.Vary
  return Verdict.Compress
}

function typeMatches(plan: CompressPlan, contentType: string): boolean {
  if (contentType === '') return false
  const semi = contentType.indexOf(';')
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  // Server-sent events are read as they come: a coder's blocks would hold them back.
  if (t === 'text/event-stream') return false
  if (plan.types.has(t)) return true
  const p = plan.typePrefixes
  for (let i = 0; i < p.length; i++) if (t.startsWith(p[i] as string)) return true
  return false
}

/** A strong ETag made weak (RFC 9110 §8.8.3: the compressed bytes differ, the content is the same); a weak one as it is. */
export function weakEtag(v: string): string {
  return v.startsWith('W/') ? v : `W/${v}`
}

/**
 * The head edits of a response the verdict `v` applies to: the route's own
 * headers.Response, then `content-encoding` (compressed), `vary:
 * accept-encoding` (unless the upstream's Vary names it or is `*`), and a
 * strong ETag made weak. Built per response; only compressing routes get here.
 */
export function zipEdits(plan: CompressPlan, v: number, enc: Enc, etag: string, varyNamed: boolean): HeaderEditPlan {
  const base = plan.base
  const zipped = v === Verdict.Compress
  const fields: Array<readonly [string, string]> = [...base.fields]
  if (zipped) fields.push(['content-encoding', ENC_NAME[enc] as string])
  if (!varyNamed) fields.push(['vary', 'accept-encoding'])
  const strong = zipped && etag !== '' && !etag.startsWith('W/') && !base.drop.has('etag')
  if (strong) fields.push(['etag', weakEtag(etag)])
  let lines = base.lines
  for (let i = base.fields.length; i < fields.length; i++) {
    const f = fields[i] as readonly [string, string]
    lines += `${f[0]}: ${f[1]}\r\n`
  }
  return { drop: strong ? plan.dropEtag : base.drop, lines, fields }
}

/** A Vary value names Accept-Encoding, or is `*` (then nothing need be added). */
export function varyNames(v: string): boolean {
  return v.trim() === '*' || /(?:^|,)\s*accept-encoding\s*(?:,|$)/i.test(v)
}

/** Where a coder's output goes: one constant object per client protocol, called with the owner (the exchange). */
export interface ZipSink<O> {
  /** Compressed bytes for the client. */
  data(owner: O, chunk: Buffer): void
  /** The coder took what was written to it: the upstream may read again. */
  drained(owner: O): void
  /** The last compressed bytes are out (after end()). */
  ended(owner: O): void
}

let zlib: typeof import('node:zlib') | null = null
/** The flush mode of each Enc, set with zlib. */
let FLUSH: readonly number[] = []

/** log2 of the window: 256 KiB, or the body's size rounded up when it is known and smaller (less to set up and hold). */
function windowLog(length: number): number {
  return length > 0 && length < 1 << 18 ? Math.max(10, Math.ceil(Math.log2(length))) : 18
}

function coder(enc: Enc, length: number): Coder {
  if (zlib === null) {
    zlib = process.getBuiltinModule('node:zlib')
    FLUSH = [0, zlib.constants.Z_SYNC_FLUSH, zlib.constants.BROTLI_OPERATION_FLUSH, zlib.constants.ZSTD_e_flush]
  }
  const { constants, createBrotliCompress, createGzip, createZstdCompress } = zlib
  if (enc === Enc.Gzip) return createGzip({ level: 5 })
  if (enc === Enc.Br) {
    const params: Record<number, number> = { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_LGWIN]: windowLog(length) }
    if (length > 0) params[constants.BROTLI_PARAM_SIZE_HINT] = length
    return createBrotliCompress({ params })
  }
  // A known length is pledged: zstd then sizes its tables for it (a small body costs a fraction of
  // an unknown one); the relay feeds exactly Content-Length bytes, or destroys the coder.
  const params = { [constants.ZSTD_c_compressionLevel]: 3, [constants.ZSTD_c_windowLog]: windowLog(length) }
  return length > 0 ? createZstdCompress({ params, pledgedSrcSize: length }) : createZstdCompress({ params })
}

function ignore(): void {
  // A coder fails only when destroyed or misused; its owner's close path cleans up.
}

/** One response body's coder. */
export class Zip<O> {
  readonly enc: Enc
  readonly z: Coder
  readonly owner: O
  readonly sink: ZipSink<O>
  /** Output paused for the client. */
  paused = false
  done = false

  constructor(enc: Enc, length: number, owner: O, sink: ZipSink<O>) {
    this.enc = enc
    this.owner = owner
    this.sink = sink
    const z = coder(enc, length)
    this.z = z
    z.on('data', (chunk: Buffer) => {
      if (!this.done) sink.data(owner, chunk)
    })
    z.on('drain', () => {
      if (!this.done) sink.drained(owner)
    })
    z.on('end', () => {
      if (this.done) return
      this.done = true
      sink.ended(owner)
    })
    z.on('error', ignore)
  }

  /** Body bytes in; false when the coder's input is full (pause the upstream until drained()). */
  write(data: Buffer): boolean {
    return this.z.write(data)
  }

  /** What was written so far goes out as soon as it is compressed. */
  flush(): void {
    this.z.flush(FLUSH[this.enc] as number)
  }

  end(): void {
    this.z.end()
  }

  pause(): void {
    if (this.paused) return
    this.paused = true
    this.z.pause()
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    this.z.resume()
  }

  /** The exchange is gone: no more callbacks, the coder's memory freed. */
  destroy(): void {
    this.done = true
    this.z.destroy()
  }
}
