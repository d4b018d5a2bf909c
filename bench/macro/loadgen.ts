// The benchmark's load generator, run as its own process (never inside the
// process under test). Keep-alive HTTP/1.1 GETs on raw node:net sockets.
//
//   node bench/macro/loadgen.ts '<json spec>'   -> one JSON result line
//
// Modes:
// - open: fixed rate (open loop). Request i is due at start + i/rate whether
//   or not earlier ones have been answered; it goes out on an idle connection
//   or waits for one. Its latency is measured from when it was due, not from
//   when it was sent, so a stall of the server counts against every request
//   it delayed (corrected for coordinated omission, as wrk2 does). The result
//   also says how late requests were sent (`sendLag`) and the rate actually
//   sent, to show whether the generator kept up.
// - closed: each connection sends its next request when the previous answer
//   is complete (throughput; latency from the send).
// - hold: opens `conns` connections, sends one request on each, keeps them
//   open and idle; prints `{"held":n}` and waits for SIGTERM.
// - burst: opens `conns` connections at once, each sending one request as
//   soon as it is connected; latency from the connect call to the complete
//   response, so time spent in the proxy's accept queue counts (`lastMs`:
//   when the last answer came, from the first connect call).
//
// `"tls": true` in the spec: the same over TLS (any certificate accepted).
//
// With LOADGEN_DEBUG=1 in the environment, an open run lists on stderr every
// request still unanswered at its end (connection state, bytes received).

import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { performance } from 'node:perf_hooks'

interface Spec {
  mode: 'open' | 'closed' | 'hold' | 'burst'
  host: string
  port: number
  path: string
  conns: number
  durationMs: number
  /** open mode: requests per second. */
  rate: number
  /** Results of requests due in the first warmupMs are not recorded. */
  warmupMs: number
  /** Over TLS (any certificate accepted: the bench's own, self-signed). */
  tls: boolean
}

const spec = { host: '127.0.0.1', path: '/', conns: 64, durationMs: 10_000, rate: 1000, warmupMs: 1000, tls: false, ...(JSON.parse(process.argv[2] ?? '{}') as Partial<Spec>) } as Spec
const REQ = Buffer.from(`GET ${spec.path} HTTP/1.1\r\nhost: bench.local\r\nuser-agent: balancer-bench\r\n\r\n`, 'latin1')
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')

class Conn {
  readonly sock: Socket
  buf: Buffer | null = null
  /** Body bytes still expected; -1 while the head is incomplete. */
  need = -1
  busy = false
  intended = 0
  sentAt = 0
  constructor(sock: Socket) {
    this.sock = sock
  }
}

const latencies: number[] = []
const lags: number[] = []
let done = 0
let errors = 0
let non2xx = 0
/** Status codes other than 2xx, and why connections closed under a request: what `errors` is made of. */
const statuses: Record<string, number> = {}
const closes: Record<string, number> = {}
let recordFrom = 0
let stopAt = Infinity
let onIdle: (c: Conn) => void = () => undefined
/** Every connection not yet closed, including those opened again after a close. */
const live = new Set<Conn>()

function send(c: Conn, intended: number): void {
  c.busy = true
  c.intended = intended
  c.sentAt = performance.now()
  if (intended >= recordFrom) lags.push(c.sentAt - intended)
  c.sock.write(REQ)
}

function onData(c: Conn, chunk: Buffer): void {
  let b = c.buf === null ? chunk : Buffer.concat([c.buf, chunk])
  for (;;) {
    if (c.need < 0) {
      const end = b.indexOf(HEAD_END)
      if (end < 0) break
      const head = b.toString('latin1', 0, end)
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
      if (!head.startsWith('HTTP/1.1 2')) {
        non2xx++
        const st = head.slice(9, 12)
        statuses[st] = (statuses[st] ?? 0) + 1
      }
      c.need = m === null ? 0 : Number(m[1])
      b = b.subarray(end + 4)
    }
    if (b.length < c.need) {
      // body bytes are counted off as they come, not kept
      c.need -= b.length
      b = b.subarray(b.length)
      break
    }
    b = b.subarray(c.need)
    c.need = -1
    complete(c)
  }
  c.buf = b.length === 0 ? null : b
}

function complete(c: Conn): void {
  const now = performance.now()
  c.busy = false
  done++
  const from = spec.mode === 'open' ? c.intended : c.sentAt
  if (c.intended >= recordFrom && now <= stopAt + 60_000) latencies.push(now - from)
  onIdle(c)
}

function open(onReady: (c: Conn) => void): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = spec.tls
      ? tlsConnect({ host: spec.host, port: spec.port, servername: 'bench.local', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: spec.host, port: spec.port, noDelay: true })
    const c = new Conn(sock)
    live.add(c)
    sock.once(spec.tls ? 'secureConnect' : 'connect', () => resolve(c))
    sock.once('error', reject)
    let why = 'closed by the server'
    sock.on('data', (d: Buffer) => onData(c, d))
    sock.on('close', () => {
      live.delete(c)
      if (c.busy) {
        errors++
        closes[why] = (closes[why] ?? 0) + 1
      }
      c.busy = false
      // Reconnect while the run lasts (a proxy may close after an error).
      if (performance.now() < stopAt) void open(onReady).then(onReady, () => errors++)
    })
    sock.on('error', (err: NodeJS.ErrnoException) => (why = err.code ?? err.message))
  })
}

function percentiles(xs: number[]): Record<string, number> {
  const a = Float64Array.from(xs).sort()
  const q = (p: number): number => (a.length === 0 ? 0 : (a[Math.min(a.length - 1, Math.floor(p * a.length))] as number))
  const r = (v: number): number => Math.round(v * 1000) / 1000
  return { p50: r(q(0.5)), p90: r(q(0.9)), p99: r(q(0.99)), p999: r(q(0.999)), max: r(a.length === 0 ? 0 : (a[a.length - 1] as number)) }
}

async function runOpen(): Promise<object> {
  const idle: Conn[] = []
  const backlog: number[] = []
  let head = 0
  let maxBacklog = 0
  onIdle = (c) => {
    if (c.sock.destroyed) return
    if (head < backlog.length) send(c, backlog[head++] as number)
    else idle.push(c)
  }
  const conns = await Promise.all(Array.from({ length: spec.conns }, () => open(onIdle)))
  // One unrecorded request on every connection before the clock starts. The
  // idle stack is last in, first out, so the connections at its bottom may
  // sit unused for the whole run; one that has never carried a request is
  // closed by the proxy after its first-request timeout (10 s, like
  // HAProxy's `timeout http-request`), and a burst reaching that deep could
  // send on it just as the proxy closed it. After one exchange the (longer)
  // keep-alive idle timeout applies, as for any client's pooled connection.
  recordFrom = Infinity
  for (const c of conns) send(c, performance.now())
  const primed = performance.now() + 10_000
  while (idle.length < conns.length && performance.now() < primed) await new Promise((r) => setTimeout(r, 5))
  const start = performance.now()
  recordFrom = start + spec.warmupMs
  stopAt = start + spec.warmupMs + spec.durationMs
  const interval = 1000 / spec.rate
  const total = Math.floor(((spec.warmupMs + spec.durationMs) * spec.rate) / 1000)
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now()
      while (next < total && start + next * interval <= now) {
        const intended = start + next * interval
        next++
        // A connection the server closed while it sat idle (its idle or
        // first-request timeout) is dropped here; its replacement was pushed.
        let c = idle.pop()
        while (c !== undefined && c.sock.destroyed) c = idle.pop()
        if (c !== undefined) send(c, intended)
        else backlog.push(intended)
      }
      maxBacklog = Math.max(maxBacklog, backlog.length - head)
      if (head > 4096 && head * 2 > backlog.length) {
        backlog.splice(0, head)
        head = 0
      }
      if (next < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  // Wait for the last answers (bounded).
  const end = performance.now() + 10_000
  const busy = (): Conn[] => [...live].filter((c) => c.busy)
  while ((head < backlog.length || busy().length > 0) && performance.now() < end) await new Promise((r) => setTimeout(r, 5))
  const unanswered = backlog.length - head + busy().length
  if (process.env.LOADGEN_DEBUG)
    for (const c of busy())
      process.stderr.write(
        `busy: need ${c.need} buf ${c.buf?.length ?? 0} ${JSON.stringify(c.buf?.toString('latin1') ?? '')} sentAgo ${(performance.now() - c.sentAt).toFixed(0)} local ${c.sock.localPort} backlog ${backlog.length - head}\n`,
      )
  stopAt = 0
  for (const c of live) c.sock.destroy()
  const sent = lags.length
  return {
    mode: 'open',
    targetRate: spec.rate,
    conns: spec.conns,
    durationMs: spec.durationMs,
    sentRate: Math.round((sent * 1000) / spec.durationMs),
    recorded: latencies.length,
    errors: errors + unanswered,
    non2xx,
    unanswered,
    statuses,
    closes,
    latencyMs: percentiles(latencies),
    sendLagMs: percentiles(lags),
    maxBacklog,
  }
}

async function runClosed(): Promise<object> {
  let stopped = false
  onIdle = (c) => {
    if (!stopped) send(c, performance.now())
  }
  const conns = await Promise.all(Array.from({ length: spec.conns }, () => open(onIdle)))
  const start = performance.now()
  recordFrom = start + spec.warmupMs
  stopAt = start + spec.warmupMs + spec.durationMs
  for (const c of conns) send(c, performance.now())
  await new Promise((r) => setTimeout(r, spec.warmupMs))
  const d0 = done
  await new Promise((r) => setTimeout(r, spec.durationMs))
  const n = done - d0
  stopped = true
  for (const c of conns) c.sock.destroy()
  return { mode: 'closed', conns: spec.conns, durationMs: spec.durationMs, rps: Math.round((n * 1000) / spec.durationMs), errors, non2xx, statuses, closes, latencyMs: percentiles(latencies) }
}

async function runHold(): Promise<void> {
  const held: Conn[] = []
  stopAt = Infinity
  const answered = new Set<Conn>()
  onIdle = (c) => answered.add(c)
  const BATCH = 500
  for (let i = 0; i < spec.conns; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, spec.conns - i) }, () => open(() => undefined).catch(() => null)))
    for (const c of batch) {
      if (c === null) errors++
      else {
        held.push(c)
        send(c, performance.now())
      }
    }
    const until = performance.now() + 10_000
    while (answered.size < held.length && performance.now() < until) await new Promise((r) => setTimeout(r, 5))
  }
  process.stdout.write(`${JSON.stringify({ mode: 'hold', held: answered.size, errors, non2xx })}\n`)
  process.on('SIGTERM', () => {
    const open = held.filter((c) => !c.sock.destroyed).length
    process.stdout.write(`${JSON.stringify({ mode: 'hold', stillOpen: open })}\n`)
    process.exit(0)
  })
  setInterval(() => undefined, 1 << 30)
}

async function runBurst(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  let last = 0
  const answered = new Set<Conn>()
  onIdle = (c) => {
    answered.add(c)
    last = performance.now()
    c.sock.destroy()
  }
  const conns = await Promise.all(
    Array.from({ length: spec.conns }, () => {
      const at = performance.now()
      return open(() => undefined).then(
        (c) => {
          c.intended = at
          c.sentAt = at
          c.busy = true
          c.sock.write(REQ)
          return c
        },
        () => null,
      )
    }),
  )
  const until = performance.now() + spec.durationMs
  const expected = conns.filter((c) => c !== null).length
  while (answered.size < expected && performance.now() < until) await new Promise((r) => setTimeout(r, 5))
  for (const c of conns) c?.sock.destroy()
  return { mode: 'burst', conns: spec.conns, answered: answered.size, errors: errors + spec.conns - expected, non2xx, lastMs: Math.round(last - t0), latencyMs: percentiles(latencies) }
}

if (spec.mode === 'hold') await runHold()
else if (spec.mode === 'burst') {
  process.stdout.write(`${JSON.stringify(await runBurst())}\n`)
  process.exit(0)
} else {
  const result = spec.mode === 'open' ? await runOpen() : await runClosed()
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}
