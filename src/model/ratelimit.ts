// The `ratelimit` group of a server or route: a token bucket per client.
//
//   Average       requests per second allowed on average (a number > 0, at
//                 most 1000000; fractions allowed: 0.5 is one every 2 s).
//   Burst         how many may come at once above the average (an integer
//                 1-1000000; default: Average rounded up).
//   SourceHeader  a header name whose value identifies the client (an API
//                 key, a user id set by ForwardAuth); '' (default): the
//                 client address, which from a --trusted-proxies peer is the
//                 last X-Forwarded-For address that is not a trusted proxy.
//                 A request without the header counts under its address.
//
// Over the limit: 429 with Retry-After. The limit is for the whole cluster:
// every instance sharing the store enforces its share (README "Route
// rules").

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, readFields, readInt } from './fields.ts'
import type { RateLimit } from './types.ts'

const FIELDS = ['Average', 'Burst', 'SourceHeader'] as const
export const RATELIMIT_FIELDS: readonly string[] = FIELDS
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const MAX = 1_000_000
/** Fields the balancer itself writes or that are hop-by-hop: no client identity in them. */
const NOT_SOURCE = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'host'])

export function readRateLimit(raw: unknown, path: string, problems: Problem[]): RateLimit | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const average = readAverage(f.Average, `${path}.Average`, problems)
  const burst = readInt(f.Burst, `${path}.Burst`, 1, MAX, average === null ? 1 : Math.max(1, Math.ceil(average)), problems)
  const source = readSource(f.SourceHeader, problems)
  if (problems.length > before || average === null || burst === null || source === null) return null
  return { Average: average, Burst: burst, SourceHeader: source }
}

function readAverage(f: Found | undefined, missingPath: string, problems: Problem[]): number | null {
  if (f === undefined || isMissing(f)) {
    problems.push({ path: missingPath, message: `required: requests per second, a number above 0 and at most ${MAX}` })
    return null
  }
  const v = f.value
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v.trim()) : Number.NaN
  if (!Number.isFinite(n) || n <= 0 || n > MAX) {
    problems.push({ path: f.path, message: `must be requests per second, a number above 0 and at most ${MAX}, got ${describeValue(v)}` })
    return null
  }
  return n
}

function readSource(f: Found | undefined, problems: Problem[]): string | null {
  if (f === undefined || isMissing(f)) return ''
  const v = f.value
  const s = typeof v === 'string' ? v.trim() : null
  if (s === '') return ''
  if (s === null || !TOKEN.test(s) || NOT_SOURCE.has(s.toLowerCase())) {
    problems.push({ path: f.path, message: `must be a header name (not hop-by-hop, framing or Host), or "" for the client address, got ${describeValue(v)}` })
    return null
  }
  return s.toLowerCase()
}
