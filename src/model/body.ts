// The `body` group of a server or route: how large a request body, and a
// response body, may be.
//
//   MaxRequestBytes   an integer 0-1099511627776 (1 TiB); 0 or absent: no
//                     limit. A request whose Content-Length is larger is
//                     answered 413 before the upstream sees a byte of it; a
//                     chunked (or HTTP/2 DATA) body that grows past it is cut:
//                     413 to the client when no response has started (the
//                     upstream connection is dropped), else the client's
//                     connection (HTTP/1.1) or stream (HTTP/2) is reset.
//   MaxResponseBytes  the same bounds, for the upstream's response body: a
//                     Content-Length over it is answered 502 before the
//                     client sees a byte of the response; a body that grows
//                     past it (chunked, close-delimited, HTTP/2 DATA) is cut
//                     by resetting the client's connection (HTTP/1.1) or
//                     stream (HTTP/2), so the client never takes a cut body
//                     for a whole one. The upstream connection is dropped.
//
// Labels: `balancer.body.maxrequestbytes=1048576`,
// `balancer.body.maxresponsebytes=10485760`.

import type { Problem } from './errors.ts'
import { readFields, readInt } from './fields.ts'
import type { Body } from './types.ts'

const FIELDS = ['MaxRequestBytes', 'MaxResponseBytes'] as const
export const BODY_FIELDS: readonly string[] = FIELDS
const MAX = 1024 ** 4

export function readBody(raw: unknown, path: string, problems: Problem[]): Body | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const max = readBytes(f.MaxRequestBytes, `${path}.MaxRequestBytes`, problems)
  const maxResponse = readBytes(f.MaxResponseBytes, `${path}.MaxResponseBytes`, problems)
  if (problems.length > before || max === null || maxResponse === null) return null
  return { MaxRequestBytes: max, MaxResponseBytes: maxResponse }
}

function readBytes(f: Parameters<typeof readInt>[0], path: string, problems: Problem[]): number | null {
  if (f !== undefined && typeof f.value === 'string' && /^[0-9]{11,13}$/.test(f.value.trim())) {
    const n = Number(f.value.trim())
    if (n <= MAX) return n
  }
  return readInt(f, path, 0, MAX, 0, problems)
}
