// The `grpc` active check: the standard gRPC health protocol
// (grpc.health.v1.Health/Check) over HTTP/2 with prior knowledge, as gRPC
// services behind an h2c upstream speak it, or over TLS for an h2 one. The
// check's Path names the service asked about: `/` the server as a whole
// (service ""), `/pkg.Svc` that service. Healthy when the call ends with grpc-status 0 and the
// answer says SERVING; the result is the serving status (`SERVING`,
// `NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN`), `grpc-status N`, or what
// went wrong (`timeout`, `ECONNREFUSED`, `bad response`).
//
// node:http2 is used here, not the data plane's frame layer: a check is one
// call every Interval, off the request path, and this is the client every
// gRPC library's health check interoperates with. It loads with the first
// gRPC check (a worker without one does not pay for it: ~9 MiB resident).
import { isIP } from 'node:net'
import type { CheckPlan } from '../compiler/snapshot.ts'
import type { ProbeTarget } from './probe.ts'

const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN']

/** HealthCheckRequest { string service = 1; } in a gRPC message frame (uncompressed, length-prefixed). */
function requestFrame(service: string): Buffer {
  const s = Buffer.from(service, 'utf8')
  const msg = s.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(s.length), s])
  const head = Buffer.alloc(5)
  head.writeUInt32BE(msg.length, 1)
  return Buffer.concat([head, msg])
}

function varint(n: number): Buffer {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Buffer.from(out)
}

/** HealthCheckResponse's `status` (field 1, varint) from a gRPC message frame; -1 if absent or malformed. */
function servingStatus(body: Buffer): number {
  if (body.length < 5 || body[0] !== 0) return -1
  const len = body.readUInt32BE(1)
  const msg = body.subarray(5, 5 + len)
  if (msg.length === 0) return 0 // every field at its default: UNKNOWN
  let p = 0
  while (p < msg.length) {
    const key = msg[p++] as number
    if (key === 0x08) return (msg[p] as number) & 0x7f
    if ((key & 7) === 0) {
      while (p < msg.length && ((msg[p] as number) & 0x80) !== 0) p++
      p++
    } else if ((key & 7) === 2) {
      p += (msg[p] as number) + 1
    } else return -1
  }
  return 0
}

/** Runs one gRPC health check; returns a function that aborts it (done is then not called). */
export function grpcProbe(plan: CheckPlan, t: ProbeTarget, done: (ok: boolean, result: string) => void): () => void {
  let settled = false
  const tls = t.tls ?? null
  // An h2 upstream (Scheme https) is checked over TLS with the engine's upstream CAs.
  const { connect } = process.getBuiltinModule('node:http2')
  const session = tls === null ? connect(`http://${t.authority}`) : connect(`https://${t.authority}`, { secureContext: tls, ...(isIP(t.host) === 0 ? { servername: t.host } : {}) })
  const finish = (ok: boolean, result: string): void => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    session.destroy()
    done(ok, result)
  }
  const timer = setTimeout(() => finish(false, 'timeout'), plan.timeoutMs)
  session.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? 'error'))
  session.on('close', () => finish(false, 'closed'))
  const req = session.request({
    ':method': 'POST',
    ':path': '/grpc.health.v1.Health/Check',
    ':authority': plan.host === '' ? t.authority : plan.host,
    'content-type': 'application/grpc',
    te: 'trailers',
    'user-agent': 'balancer-health',
  })
  const chunks: Buffer[] = []
  let grpcStatus = -1
  req.on('response', (h) => {
    if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status'])
  })
  req.on('trailers', (h) => {
    if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status'])
  })
  req.on('data', (d: Buffer) => chunks.push(d))
  req.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? 'error'))
  req.on('end', () => {
    if (grpcStatus !== 0) return finish(false, grpcStatus < 0 ? 'bad response' : `grpc-status ${grpcStatus}`)
    const st = servingStatus(Buffer.concat(chunks))
    if (st < 0) return finish(false, 'bad response')
    finish(st === 1, STATUS[st] ?? `status ${st}`)
  })
  req.end(requestFrame(plan.path === '/' ? '' : plan.path.slice(1)))
  return () => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    session.destroy()
  }
}
