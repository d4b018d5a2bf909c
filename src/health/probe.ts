// One active check against one upstream: `tcp` connects, `http` sends a real
// HTTP/1.1 request and reads the status line, `grpc` asks the gRPC health
// service (grpc-probe.ts). Whatever happens, `done` is
// called exactly once: with ok=true and the status (or `connected`), or
// ok=false and what went wrong (`503`, `timeout`, `ECONNREFUSED`, `closed`,
// `bad response`). The timeout covers everything from the connect to the
// status line, so an upstream that accepts and then never answers fails.
// Checks are not on the request path: a closure and a timer per check is fine.

import { connect, isIP } from 'node:net'
import type { Socket } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { CheckPlan } from '../compiler/snapshot.ts'
import { grpcProbe } from './grpc-probe.ts'

export interface ProbeTarget {
  host: string
  port: number
  /** `host:port` as it goes into a Host header (IPv6 in brackets). */
  authority: string
  /** Checked over TLS with this context (an upstream with Scheme `https`): verified, SNI its host; null: plain. */
  tls?: SecureContext | null
}

/** The status line is all a check reads; a longer first line is not HTTP. */
const STATUS_LINE_MAX = 4096

export function statusOk(plan: CheckPlan, status: number): boolean {
  for (const [lo, hi] of plan.statuses) if (status >= lo && status <= hi) return true
  return false
}

export function requestBytes(plan: CheckPlan, t: ProbeTarget): string {
  const host = plan.host === '' ? t.authority : plan.host
  return `${plan.method} ${plan.path} HTTP/1.1\r\nhost: ${host}\r\nuser-agent: balancer-health\r\naccept: */*\r\nconnection: close\r\n\r\n`
}

/** Runs one check; returns a function that aborts it (done is then not called). */
export function probe(plan: CheckPlan, t: ProbeTarget, done: (ok: boolean, result: string) => void): () => void {
  if (plan.type === 'grpc') return grpcProbe(plan, t, done)
  let settled = false
  let head = ''
  const tls = t.tls ?? null
  const sock: Socket =
    tls === null
      ? connect({ host: t.host, port: t.port, noDelay: true })
      : process.getBuiltinModule('node:tls').connect({ host: t.host, port: t.port, secureContext: tls, ALPNProtocols: ['http/1.1'], ...(isIP(t.host) === 0 ? { servername: t.host } : {}) })
  const finish = (ok: boolean, result: string): void => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    sock.destroy()
    done(ok, result)
  }
  const timer = setTimeout(() => finish(false, 'timeout'), plan.timeoutMs)
  sock.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? 'error'))
  sock.on('close', () => finish(false, 'closed'))
  sock.once(tls === null ? 'connect' : 'secureConnect', () => {
    if (plan.type === 'tcp') return finish(true, 'connected')
    sock.write(requestBytes(plan, t), 'latin1')
  })
  sock.on('data', (chunk: Buffer) => {
    head += chunk.latin1Slice(0, Math.min(chunk.length, STATUS_LINE_MAX))
    for (;;) {
      const eol = head.indexOf('\r\n')
      if (eol < 0) {
        if (head.length >= STATUS_LINE_MAX) finish(false, 'bad response')
        return
      }
      const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(head.slice(0, eol))
      if (m === null) return finish(false, 'bad response')
      const status = Number(m[1])
      if (status >= 200) return finish(statusOk(plan, status), String(status))
      // An interim response (100, 103) is not the answer: skip its head, read the next status line.
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      head = head.slice(end + 4)
    }
  })
  return () => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    sock.destroy()
  }
}
