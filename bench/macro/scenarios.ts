// The macro scenarios. Each starts what it measures, prints one table and
// stops everything it started. Figures from one run compare with each other;
// across machines or runs, compare ratios.

import { CLK_TCK, benchCert, has, hold, load, processRss, startBalancer, startHaproxy, startNginx, startUpstream, treeUsage, wrk } from './procs.ts'
import type { Target } from './procs.ts'
import { spawn } from 'node:child_process'
import { h2loadBurst, median, sampleAcceptQueue } from './burst.ts'
import type { Burst, QueueFigures } from './burst.ts'

export interface Settings {
  workers: number[]
  durationMs: number
  rate: number
  conns: number
  idleConns: number
  soakMs: number
  proxyCpus: string | null
  loadCpus: string | null
  haproxy: boolean
}

export function table(title: string, head: string[], rows: Array<Array<string | number>>): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))]
  const w = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)))
  console.log(`\n## ${title}\n`)
  for (const [k, r] of cells.entries()) {
    console.log(r.map((c, i) => (i === 0 ? String(c).padEnd(w[i] ?? 0) : String(c).padStart(w[i] ?? 0))).join('  '))
    if (k === 0) console.log(w.map((n) => '-'.repeat(n)).join('  '))
  }
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-'
  if (Number.isInteger(n)) return String(n)
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Starts each target in turn (balancer per worker count, then HAProxy), runs fn, stops it. */
async function eachTarget(s: Settings, ups: number[], fn: (t: Target) => Promise<void>, opts: { haproxy?: boolean; extra?: string[] } = {}): Promise<void> {
  const starts: Array<() => Promise<Target>> = s.workers.map((w) => () => startBalancer(w, ups, s.proxyCpus, opts.extra ?? []))
  if (s.haproxy && (opts.haproxy ?? true) && has('haproxy')) starts.push(() => startHaproxy(ups, s.proxyCpus))
  for (const start of starts) {
    const t = await start()
    try {
      await fn(t)
    } finally {
      await t.stop()
    }
  }
}

async function withUpstream<T>(s: Settings, fn: (ports: number[]) => Promise<T>, bodyBytes?: number): Promise<T> {
  const up = await startUpstream(s.loadCpus, bodyBytes)
  try {
    return await fn(up.ports)
  } finally {
    await up.stop()
  }
}

interface ClosedRun {
  rps: number
  p50: number
  p99: number
  errors: number
  cpuUsPerReq: number
  cpuPct: number
}

/** A warm-up, then one closed-loop run on `conns` connections, with the proxy's CPU time from /proc. */
async function measureClosed(s: Settings, t: Target, conns: number): Promise<ClosedRun> {
  const secs = Math.max(1, Math.round(s.durationMs / 1000))
  const useWrk = has('wrk')
  const run = async (ms: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> => {
    if (useWrk) return wrk(t.port, conns, Math.max(1, Math.round(ms / 1000)), s.loadCpus)
    const r = await load({ mode: 'closed', port: t.port, conns, durationMs: ms, warmupMs: 0 }, s.loadCpus)
    const l = r.latencyMs as Record<string, number>
    return { rps: r.rps as number, p50: l.p50 ?? NaN, p99: l.p99 ?? NaN, errors: (r.errors as number) + (r.non2xx as number) }
  }
  await run(2000) // warm-up: JIT, pools
  const u0 = treeUsage(t.pid)
  const r = await run(secs * 1000)
  const u1 = treeUsage(t.pid)
  const cpuS = (u1.ticks - u0.ticks) / CLK_TCK
  return { ...r, cpuUsPerReq: (cpuS * 1e6) / Math.max(1, r.rps * secs), cpuPct: Math.round((cpuS * 100) / secs) }
}

const generator = (): string => (has('wrk') ? 'wrk' : 'Node load generator')

/** Closed loop: as many requests as the proxy answers; its CPU time per request from /proc. */
export async function closedLoop(s: Settings): Promise<void> {
  const rows: Array<Array<string | number>> = []
  await withUpstream(s, (ups) =>
    eachTarget(s, ups, async (t) => {
      const r = await measureClosed(s, t, s.conns)
      rows.push([t.name, r.rps, r.p50, r.p99, r.cpuUsPerReq, `${r.cpuPct}%`, r.errors])
    }),
  )
  table(`Closed loop: ${s.conns} keep-alive connections, ${Math.round(s.durationMs / 1000)}s, ${generator()}`, ['target', 'req/s', 'p50 ms', 'p99 ms', 'cpu µs/req', 'cpu', 'errors'], rows)
}

const LARGE_BYTES = 1024 * 1024
const LARGE_CONNS = 16

/** 1 MiB responses, closed loop: CPU time per response and bytes relayed per CPU second. */
export async function largeBodies(s: Settings): Promise<void> {
  const rows: Array<Array<string | number>> = []
  await withUpstream(
    s,
    (ups) =>
      eachTarget(s, ups, async (t) => {
        const r = await measureClosed(s, t, LARGE_CONNS)
        const gbPerCpuS = LARGE_BYTES / (r.cpuUsPerReq * 1e-6) / 1e9
        rows.push([t.name, r.rps, (r.rps * LARGE_BYTES) / 1e9, r.p99, r.cpuUsPerReq, gbPerCpuS, `${r.cpuPct}%`, r.errors])
      }),
    LARGE_BYTES,
  )
  table(
    `Large bodies: 1 MiB responses, ${LARGE_CONNS} keep-alive connections, ${Math.round(s.durationMs / 1000)}s, ${generator()}`,
    ['target', 'req/s', 'GB/s', 'p99 ms', 'cpu µs/req', 'GB per cpu s', 'cpu', 'errors'],
    rows,
  )
}

function openRow(name: string, r: Record<string, unknown>): Array<string | number> {
  const l = r.latencyMs as Record<string, number>
  const lag = r.sendLagMs as Record<string, number>
  return [name, r.targetRate as number, r.sentRate as number, l.p50 ?? NaN, l.p99 ?? NaN, l.p999 ?? NaN, l.max ?? NaN, lag.p99 ?? NaN, (r.errors as number) + (r.non2xx as number)]
}
/** What a load generator run counted as errors, when it counted any. */
function explain(t: Target, r: Record<string, unknown>): void {
  if ((r.errors as number) + (r.non2xx as number) === 0) return
  const log = t.log === null ? '' : `; the proxy's log: ${t.log}`
  console.log(`${t.name}: errors: ${JSON.stringify({ statuses: r.statuses, closedUnderRequest: r.closes, unanswered: r.unanswered })}${log}`)
}
const OPEN_HEAD = ['target', 'rate', 'sent/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'send lag p99', 'errors']

/** Fixed rate (open loop), latency from each request's intended send time. Returns the figures by target. */
export async function fixedRate(s: Settings): Promise<Map<string, Record<string, number>>> {
  const rows: Array<Array<string | number>> = []
  const out = new Map<string, Record<string, number>>()
  await withUpstream(s, (ups) =>
    eachTarget(s, ups, async (t) => {
      await load({ mode: 'closed', port: t.port, conns: s.conns, durationMs: 2000, warmupMs: 0 }, s.loadCpus)
      const r = await load({ mode: 'open', port: t.port, conns: s.conns, rate: s.rate, durationMs: s.durationMs, warmupMs: 1000 }, s.loadCpus)
      rows.push(openRow(t.name, r))
      explain(t, r)
      out.set(t.name, r.latencyMs as Record<string, number>)
    }),
  )
  table(`Fixed rate: ${s.rate} req/s on ${s.conns} keep-alive connections, ${s.durationMs / 1000}s (latency from the intended send time)`, OPEN_HEAD, rows)
  return out
}

/** The same fixed rate while the API changes the route's weights every 250 ms. */
export async function reloadUnderLoad(s: Settings, baseline: Map<string, Record<string, number>>): Promise<void> {
  const rows: Array<Array<string | number>> = []
  await withUpstream(s, (ups) =>
    eachTarget(
      s,
      ups,
      async (t) => {
        await load({ mode: 'closed', port: t.port, conns: s.conns, durationMs: 2000, warmupMs: 0 }, s.loadCpus)
        let writes = 0
        let failed = 0
        let running = true
        const writer = (async () => {
          await sleep(1000)
          while (running) {
            const res = await fetch(`${t.api}/server/127.0.0.1:${t.port}/upstream/127.0.0.1-${ups[0]}`, {
              method: 'PUT',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ Weight: 1 + (writes % 3) }),
            })
            await res.arrayBuffer()
            if (res.status >= 300) failed++
            writes++
            await sleep(250)
          }
        })()
        const r = await load({ mode: 'open', port: t.port, conns: s.conns, rate: s.rate, durationMs: s.durationMs, warmupMs: 1000 }, s.loadCpus)
        running = false
        await writer
        explain(t, r)
        const l = r.latencyMs as Record<string, number>
        const b = baseline.get(t.name) ?? {}
        rows.push([t.name, writes, failed, b.p50 ?? NaN, l.p50 ?? NaN, b.p99 ?? NaN, l.p99 ?? NaN, b.p999 ?? NaN, l.p999 ?? NaN, (r.errors as number) + (r.non2xx as number)])
      },
      { haproxy: false },
    ),
  )
  table(
    `Reload under load: ${s.rate} req/s, an API write every 250 ms (without -> during)`,
    ['target', 'writes', 'refused', 'p50 w/o', 'p50 during', 'p99 w/o', 'p99 during', 'p99.9 w/o', 'p99.9 during', 'errors'],
    rows,
  )
}

/**
 * At rest: the balancer with an empty configuration, RSS of the main process
 * and of each worker once startup has settled. Started twice, measured the
 * second time: the first start fills Node's compile cache, as the first start
 * after an install does.
 */
async function atRest(s: Settings): Promise<void> {
  const rows: Array<Array<string | number>> = []
  for (const w of s.workers) {
    await (await startBalancer(w, [], s.proxyCpus)).stop()
    const t = await startBalancer(w, [], s.proxyCpus)
    try {
      await sleep(3000)
      const r = processRss(t.pid)
      const max = r.children.length === 0 ? NaN : Math.max(...r.children)
      const maxPrivate = r.childrenPrivate.length === 0 ? NaN : Math.max(...r.childrenPrivate)
      rows.push([t.name, r.self, r.selfPrivate, r.children.length, max, maxPrivate, r.self + r.children.reduce((a, b) => a + b, 0)])
    } finally {
      await t.stop()
    }
  }
  table(
    'Memory at rest: empty configuration, RSS per process (goal: main <= 100 MiB, each worker <= 55 MiB); private: the part no other process shares (RSS less the node binary and libraries)',
    ['target', 'main MiB', 'main private', 'workers', 'worker MiB (max)', 'worker private (max)', 'total MiB'],
    rows,
  )
}

/** RSS at rest, then of the balancer (all its processes) idle, then with idleConns idle keep-alive client connections. */
export async function memory(s: Settings): Promise<void> {
  await atRest(s)
  const rows: Array<Array<string | number>> = []
  await withUpstream(s, (ups) =>
    eachTarget(
      s,
      ups,
      async (t) => {
        await load({ mode: 'closed', port: t.port, conns: 16, durationMs: 1000, warmupMs: 0 }, s.loadCpus)
        await sleep(2000)
        const idle = treeUsage(t.pid)
        const h = await hold(t.port, s.idleConns, s.loadCpus)
        await sleep(3000)
        const busy = treeUsage(t.pid)
        let conns = NaN
        if (t.api !== null) {
          const st = (await (await fetch(`${t.api}/status`)).json()) as { engine: { listeners: Array<{ connections: number }> } }
          conns = st.engine.listeners.reduce((n, l) => n + l.connections, 0)
        }
        await h.stop()
        const delta = busy.rssMiB - idle.rssMiB
        rows.push([t.name, idle.procs, idle.rssMiB, h.held, conns, busy.rssMiB, delta, (delta * 1024) / Math.max(1, h.held), h.errors])
      },
      { extra: ['--idle-timeout', '10m'], haproxy: false },
    ),
  )
  table(
    `Memory: ${s.idleConns} idle keep-alive client connections (one request each), RSS of every process of the proxy (goal: <= 2 KiB/conn)`,
    ['target', 'procs', 'idle MiB', 'held', 'proxy conns', 'held MiB', 'delta MiB', 'KiB/conn', 'errors'],
    rows,
  )
}

/**
 * RSS per idle TLS keep-alive client connection (one request each) of the
 * balancer and of nginx (one worker), terminating TLS with the same P-256
 * certificate: what each connection costs once its handshake is done.
 */
export async function tlsMemory(s: Settings): Promise<void> {
  if (!has('nginx')) throw new Error('nginx is not installed')
  const cert = benchCert()
  const rows: Array<Array<string | number>> = []
  await withUpstream(s, async (ups) => {
    const starts: Array<() => Promise<Target>> = [
      ...s.workers.map((w) => () => startBalancer(w, ups, s.proxyCpus, ['--idle-timeout', '10m', '--header-timeout', '10m'], cert)),
      () => startNginx(ups, s.proxyCpus, cert),
    ]
    for (const begin of starts) {
      const t = await begin()
      try {
        const warm = await hold(t.port, 16, s.loadCpus, true)
        await warm.stop()
        await sleep(2000)
        const idle = treeUsage(t.pid)
        const h = await hold(t.port, s.idleConns, s.loadCpus, true)
        await sleep(3000)
        const busy = treeUsage(t.pid)
        await h.stop()
        const delta = busy.rssMiB - idle.rssMiB
        rows.push([t.name, idle.procs, idle.rssMiB, h.held, busy.rssMiB, delta, (delta * 1024) / Math.max(1, h.held), h.errors])
      } finally {
        await t.stop()
      }
    }
  })
  table(
    `TLS memory: ${s.idleConns} idle TLS keep-alive client connections (one request each), RSS of every process of the proxy`,
    ['target', 'procs', 'idle MiB', 'held', 'held MiB', 'delta MiB', 'KiB/conn', 'errors'],
    rows,
  )
}

/** Fixed-rate load for soakMs on the first worker count, RSS sampled throughout. */
export async function soak(s: Settings): Promise<void> {
  const workers = s.workers[0] ?? 1
  const samples: Array<Array<string | number>> = []
  let result: Record<string, unknown> = {}
  await withUpstream(s, async (ups) => {
    const t = await startBalancer(workers, ups, s.proxyCpus)
    try {
      const every = Math.max(5000, Math.floor(s.soakMs / 36))
      const t0 = Date.now()
      const run = load({ mode: 'open', port: t.port, conns: s.conns, rate: s.rate, durationMs: s.soakMs, warmupMs: 0 }, s.loadCpus)
      let done = false
      void run.then(
        () => (done = true),
        () => (done = true),
      )
      let u0 = treeUsage(t.pid)
      while (!done) {
        await sleep(every)
        if (done) break
        const u = treeUsage(t.pid)
        samples.push([`${Math.round((Date.now() - t0) / 1000)}s`, u.rssMiB, `${Math.round(((u.ticks - u0.ticks) * 100) / CLK_TCK / (every / 1000))}%`])
        u0 = u
      }
      result = await run
    } finally {
      await t.stop()
    }
  })
  table(`Soak: balancer w${workers}, ${s.rate} req/s for ${Math.round(s.soakMs / 1000)}s, RSS sampled`, ['elapsed', 'RSS MiB', 'cpu'], samples)
  const rss = samples.map((r) => r[1] as number)
  const q = Math.max(1, Math.floor(rss.length / 4))
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  const l = result.latencyMs as Record<string, number> | undefined
  console.log(
    `\nRSS first quarter avg ${fmt(avg(rss.slice(0, q)))} MiB, last quarter avg ${fmt(avg(rss.slice(-q)))} MiB, min ${fmt(Math.min(...rss))}, max ${fmt(Math.max(...rss))}; ` +
      `sent ${String(result.sentRate)} req/s, p99 ${fmt(l?.p99 ?? NaN)} ms, errors ${String(result.errors)}`,
  )
}

const BUSY_CONNS = 500
const BURST_CONNS = 1000
/** Bursts per target, the targets taken in turn, so a change in the machine's load falls on each; the table gives medians. */
const BURST_ROUNDS = 3

/**
 * A burst of new clients at a busy proxy: BURST_CONNS connections opened at
 * once (h2load --h1, one request each) while wrk keeps BUSY_CONNS
 * keep-alive connections busy. Time to the first response byte runs from
 * each connect, so the wait in the accept queue counts; `last` is the
 * slowest client's. Beside it: h2load's own share of that time (burst.ts)
 * and the listening socket's accept queue, sampled during the burst.
 * Without h2load or wrk, the load generator's burst and closed modes
 * stand in (slower: on a loaded machine they measure themselves more than
 * the proxy).
 */
export async function acceptBurst(s: Settings): Promise<void> {
  const native = has('h2load') && has('wrk')
  const runs = new Map<string, Array<Burst & { rps: number; queue: QueueFigures | null }>>()
  await withUpstream(s, async (ups) => {
    for (let round = 0; round < BURST_ROUNDS; round++) {
      await eachTarget(s, ups, async (t) => {
        const busy = native
          ? wrkAsync(t.port, BUSY_CONNS, 6, s.loadCpus)
          : load({ mode: 'closed', port: t.port, conns: BUSY_CONNS, durationMs: 6000, warmupMs: 0 }, s.loadCpus).then((r) => ({ rps: r.rps as number }))
        await sleep(2000)
        const sampler = has('ss') ? sampleAcceptQueue(t.port, s.loadCpus) : null
        const b = native ? h2loadBurst(t.port, BURST_CONNS, s.loadCpus) : burstFigures(await load({ mode: 'burst', port: t.port, conns: BURST_CONNS, durationMs: 10_000, warmupMs: 0 }, s.loadCpus))
        const queue = sampler === null ? null : await sampler.stop()
        const r = await busy
        const list = runs.get(t.name) ?? []
        list.push({ ...b, rps: r.rps, queue })
        runs.set(t.name, list)
      })
    }
  })
  const rows = [...runs].map(([name, list]) => {
    const med = (f: (x: (typeof list)[number]) => number): number => median(list.map(f))
    return [
      name,
      Math.min(...list.map((x) => x.answered)),
      list.reduce((n, x) => n + x.errors, 0),
      med((x) => x.meanMs),
      med((x) => x.maxMs),
      med((x) => x.connectMs),
      med((x) => x.queue?.max ?? Number.NaN),
      med((x) => x.queue?.busyMs ?? Number.NaN),
      med((x) => x.rps),
    ]
  })
  const step = median([...runs.values()].flat().map((x) => x.queue?.stepMs ?? Number.NaN))
  table(
    `Accept burst: ${BURST_CONNS} clients connecting at once, one request each, while ${BUSY_CONNS} keep-alive connections load the proxy (${native ? 'h2load --h1, wrk' : 'loadgen'}); medians of ${BURST_ROUNDS} rounds`,
    ['target', 'answered', 'errors', 'mean ms', 'last ms', 'client connect ms', 'queue max', 'queue ms', 'busy req/s'],
    rows,
  )
  console.log(
    `\nmean/last: connect to first response byte. client connect: h2load's own time from connect() to sending its request (in mean/last). queue: connections waiting in the accept queue (ss Recv-Q, sampled every ${Number.isFinite(step) ? step.toFixed(1) : '-'} ms), most at once and for how long.`,
  )
}

function burstFigures(r: Record<string, unknown>): Burst {
  const l = r.latencyMs as Record<string, number>
  return { answered: r.answered as number, errors: r.errors as number, meanMs: l.p50 ?? Number.NaN, maxMs: l.max ?? Number.NaN, connectMs: Number.NaN }
}

/** wrk in the background: resolves with its requests per second when it ends. */
function wrkAsync(port: number, conns: number, seconds: number, cpus: string | null): Promise<{ rps: number }> {
  const pin = cpus !== null && has('taskset') ? ['taskset', '-c', cpus] : []
  const argv = [...pin, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`]
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise((resolve) => child.on('exit', () => resolve({ rps: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)) })))
}
