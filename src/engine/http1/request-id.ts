// Request ids. A client's X-Request-Id is kept when it is valid (one field,
// 1-128 visible ASCII characters), so a trace that began upstream of the
// balancer carries on; otherwise the balancer makes one. Generated ids are a
// per-process random prefix and a counter: unique across processes and
// restarts with overwhelming probability, and one number-to-string per
// request instead of a random draw or a hash.
//
// The id goes upstream in `x-request-id` (forward.ts), back to the client
// unless the upstream's response carries its own (relay.ts), and into the
// access log. W3C `traceparent` / `tracestate` are ordinary fields: forwarded
// unchanged both ways.
//
// The prefix is 48 bits of Math.random() (V8 seeds it from the system's
// entropy): an id needs to be unique, not unguessable, and node:crypto costs
// each worker 1.7 MiB resident that plain HTTP does not otherwise need.

import type { RequestHead } from './parse.ts'

const MAX_ID = 128
const PREFIX = `${Math.floor(Math.random() * 2 ** 48)
  .toString(16)
  .padStart(12, '0')}-`
let seq = 0

/** The id this request is known by: the client's when valid, else a new one. */
export function requestIdOf(buf: Buffer, h: RequestHead): string {
  if (h.ridCount === 1) {
    const s = h.ridStart
    const e = h.ridEnd
    if (e > s && e - s <= MAX_ID) {
      let ok = true
      for (let p = s; p < e; p++) {
        const b = buf[p] as number
        if (b < 0x21 || b > 0x7e) {
          ok = false
          break
        }
      }
      if (ok) return buf.latin1Slice(s, e)
    }
  }
  return PREFIX + ++seq
}

/** The same rule for a value already decoded (HTTP/2): `value` is the request's only X-Request-Id, or null. */
export function requestIdFrom(value: string | null): string {
  if (value !== null && value.length > 0 && value.length <= MAX_ID) {
    let ok = true
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i)
      if (c < 0x21 || c > 0x7e) {
        ok = false
        break
      }
    }
    if (ok) return value
  }
  return PREFIX + ++seq
}
