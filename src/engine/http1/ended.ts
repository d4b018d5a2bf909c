// The end of a request: counted in its route's meter (meter.ts), and written
// to the access log when it was drawn for it. Called once per request, from
// the places where a request stops being in flight (conn.ts finishRequest,
// endConn, onClose; tunnel.ts when a 101 turns the connection into a tunnel).
// A tunnel is counted when it starts and logged when it ends, so its line
// carries the bytes and the time of the whole tunnel.
//
// Counting is allocation-free. An access log line is one string built here
// and handed to the sink, which buffers it (src/observability/access-log.ts).

import type { EngineCtx } from '../context.ts'
import { codeClass } from '../meter.ts'
import type { RouteRuntime } from '../lb/pick.ts'
import { tallyOf } from '../lb/pick.ts'
import type { Listener } from '../listener.ts'
import type { Upstream } from '../upstream/registry.ts'

/** What a request that ends tells the meters and the access log: an HTTP/1.1 connection's request (conn.ts) or an HTTP/2 stream (h2/stream.ts). */
export interface EndedRequest {
  readonly ctx: EngineCtx
  readonly listener: Listener
  readonly clientIp: string
  /** 10, 11, or 20 (HTTP/2). */
  readonly version: number
  readonly tlsVersion: string | null
  readonly route: RouteRuntime | null
  readonly tried: readonly Upstream[]
  status: number
  startedAt: number
  bytesIn: number
  bytesOut: number
  requestId: string
  logged: boolean
  logMethod: string
  logHost: string
  logTarget: string
}

function meter(conn: EndedRequest): void {
  const cls = codeClass(conn.status)
  const rt = conn.route
  if (rt === null) {
    const codes = conn.listener.refused
    codes[cls] = (codes[cls] as number) + 1
    return
  }
  const tried = conn.tried
  const t = tallyOf(rt, tried.length === 0 ? null : (tried[tried.length - 1] ?? null))
  t.codes[cls] = (t.codes[cls] as number) + 1
  t.observe((performance.now() - conn.startedAt) / 1000)
}

export function requestEnded(conn: EndedRequest): void {
  meter(conn)
  if (conn.logged) log(conn, 'http')
}

export function tunnelStarted(conn: EndedRequest): void {
  meter(conn)
}

export function tunnelEnded(conn: EndedRequest): void {
  if (!conn.logged) return
  conn.logged = false
  log(conn, 'tunnel')
}

/** The ISO time of the last line, reused while the millisecond is the same (many lines share one under load). */
let isoAt = 0
let iso = ''

function isoNow(): string {
  const now = Date.now()
  if (now !== isoAt) {
    isoAt = now
    iso = new Date(now).toISOString()
  }
  return iso
}

/** A JSON string literal; only client-sent text (host, path) can need escaping. */
const str = JSON.stringify

function log(conn: EndedRequest, kind: string): void {
  const sink = conn.ctx.accessLog
  if (sink === null) return
  const rt = conn.route
  const tried = conn.tried
  const up = tried.length === 0 ? null : (tried[tried.length - 1] ?? null)
  const ms = Math.round((performance.now() - conn.startedAt) * 1000) / 1000
  const server = rt === null ? (conn.listener.plan.plan.routes[0]?.server ?? conn.listener.key) : rt.plan.server
  // Built as one template (same fields and order as a JSON object) instead of
  // JSON.stringify over a fresh object: a line per request is the hot part.
  sink.write(
    `{"time":"${isoNow()}","kind":"${kind}","client":${str(conn.clientIp)},"method":${str(conn.logMethod)},"host":${str(conn.logHost)},"path":${str(conn.logTarget)},` +
      `"protocol":"${conn.version === 20 ? 'HTTP/2' : conn.version === 10 ? 'HTTP/1.0' : 'HTTP/1.1'}","tls":${conn.tlsVersion === null ? 'null' : str(conn.tlsVersion)},"status":${conn.status},` +
      `"bytesIn":${conn.bytesIn},"bytesOut":${conn.bytesOut},"durationMs":${ms},"server":${str(server)},"route":${rt === null ? 'null' : str(rt.plan.name)},` +
      `"upstream":${up === null ? 'null' : str(up.key)},"retries":${tried.length === 0 ? 0 : tried.length - 1},"requestId":${str(conn.requestId)}}`,
  )
}
