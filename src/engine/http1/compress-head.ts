// The fields the compress group reads from an HTTP/1.1 head just parsed
// (HDR contract, fields.ts: called right after the parse): a request's
// Accept-Encoding, a response's Content-Type, Content-Encoding,
// Cache-Control, ETag and Vary. Runs only for routes with a compress group.

import { equalsLower } from './chars.ts'
import { HDR, HF, Kind } from './fields.ts'
import type { Fields } from './fields.ts'
import type { ZipHead } from '../rules/compress.ts'

/** Every Accept-Encoding field of the request head just parsed, joined with `,` ('' when none). */
export function acceptEncodingOf(buf: Buffer, h: Fields): string {
  let out = ''
  const n = h.nHeaders
  for (let i = 0; i < n; i++) {
    const o = i * HF
    const ns = HDR[o] as number
    const ne = HDR[o + 1] as number
    if (HDR[o + 5] !== Kind.Other || ne - ns !== 15 || !equalsLower(buf, ns, ne, 'accept-encoding')) continue
    const v = buf.latin1Slice(HDR[o + 2] as number, HDR[o + 3] as number)
    out = out === '' ? v : `${out},${v}`
  }
  return out
}

/** What zipHeadOf read besides the verdict's fields. */
export interface ZipExtra {
  /** The first ETag value, '' when none. */
  etag: string
  /** Vary already names Accept-Encoding (or is `*`). */
  vary: string
}

/** The response's fields for the compress verdict, into `zh` and `extra` (both reused: one exchange at a time reads them, synchronously). */
export function zipHeadOf(buf: Buffer, r: Fields, status: number, zh: ZipHead, extra: ZipExtra): void {
  zh.status = status
  zh.contentType = ''
  zh.contentEncoding = ''
  zh.cacheControl = ''
  zh.length = r.clCount === 1 && r.teCount === 0 ? r.contentLength : -1
  extra.etag = ''
  extra.vary = ''
  const n = r.nHeaders
  for (let i = 0; i < n; i++) {
    const o = i * HF
    if (HDR[o + 5] !== Kind.Other) continue
    const ns = HDR[o] as number
    const ne = HDR[o + 1] as number
    const vs = HDR[o + 2] as number
    const ve = HDR[o + 3] as number
    switch (ne - ns) {
      case 4:
        if (equalsLower(buf, ns, ne, 'etag')) {
          if (extra.etag === '') extra.etag = buf.latin1Slice(vs, ve)
        } else if (equalsLower(buf, ns, ne, 'vary')) extra.vary = extra.vary === '' ? buf.latin1Slice(vs, ve) : `${extra.vary},${buf.latin1Slice(vs, ve)}`
        break
      case 12:
        if (zh.contentType === '' && equalsLower(buf, ns, ne, 'content-type')) zh.contentType = buf.latin1Slice(vs, ve)
        break
      case 13:
        if (equalsLower(buf, ns, ne, 'cache-control')) zh.cacheControl = zh.cacheControl === '' ? buf.latin1Slice(vs, ve) : `${zh.cacheControl},${buf.latin1Slice(vs, ve)}`
        break
      case 16:
        if (equalsLower(buf, ns, ne, 'content-encoding')) zh.contentEncoding = zh.contentEncoding === '' ? buf.latin1Slice(vs, ve) : `${zh.contentEncoding},${buf.latin1Slice(vs, ve)}`
        break
    }
  }
}
