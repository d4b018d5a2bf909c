// `npm run bench [-- flags]`: micro benchmarks, then loopback macro scenarios
// against the real balancer (--workers 1 and 2), HAProxy when installed, the
// upstream in bench/macro/upstream.ts and the load generator in
// bench/macro/loadgen.ts (wrk for closed-loop throughput when installed).
// Prints tables; asserts nothing. See README "Benchmarks".

import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseDuration } from '../src/model/duration.ts'
import { acceptBurst, closedLoop, fixedRate, largeBodies, memory, reloadUnderLoad, soak, tlsMemory } from './macro/scenarios.ts'
import type { Settings } from './macro/scenarios.ts'
import { scale } from './macro/scale.ts'

const USAGE = `Usage: npm run bench -- [flags]
  --only LIST        micro,closed,large,open,reload,memory,accept,scale,tls-memory,soak
                     (default: all but scale, tls-memory and soak)
  --workers LIST     balancer worker counts to compare (default 1,2; scale: 1)
  --duration D       per measurement (default 10s)
  --rate N           fixed-rate requests per second (default 2000)
  --conns N          connections for closed and fixed-rate runs (default 64)
  --idle-conns N     idle keep-alive connections for the memory scenarios (default 10000)
  --soak D           soak length (default 3m; the soak runs only when asked: --only soak or --soak D)
  --proxy-cpus LIST  pin the proxies with taskset (e.g. 1); default: not pinned
  --load-cpus LIST   pin the load generator and the upstream (e.g. 0); default: not pinned
  --no-haproxy       skip HAProxy even when it is installed`

function parse(argv: string[]): Settings & { only: Set<string>; scaleWorkers: number[] } {
  const s = {
    only: new Set(['micro', 'closed', 'large', 'open', 'reload', 'memory', 'accept']),
    workers: [1, 2],
    // The scale scenario runs --workers 1 unless worker counts are given.
    scaleWorkers: [1],
    durationMs: 10_000,
    rate: 2000,
    conns: 64,
    idleConns: 10_000,
    soakMs: 180_000,
    proxyCpus: null as string | null,
    loadCpus: null as string | null,
    haproxy: true,
  }
  const dur = (v: string | undefined): number => {
    const ms = parseDuration(v ?? '')
    if (ms === null) throw new Error(`not a duration: ${v}`)
    return ms
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    switch (a) {
      case '--only':
        s.only = new Set((v ?? '').split(','))
        i++
        break
      case '--workers':
        s.workers = (v ?? '').split(',').map(Number)
        s.scaleWorkers = s.workers
        i++
        break
      case '--duration':
        s.durationMs = dur(v)
        i++
        break
      case '--rate':
        s.rate = Number(v)
        i++
        break
      case '--conns':
        s.conns = Number(v)
        i++
        break
      case '--idle-conns':
        s.idleConns = Number(v)
        i++
        break
      case '--soak':
        s.soakMs = dur(v)
        s.only.add('soak')
        i++
        break
      case '--proxy-cpus':
        s.proxyCpus = v ?? null
        i++
        break
      case '--load-cpus':
        s.loadCpus = v ?? null
        i++
        break
      case '--no-haproxy':
        s.haproxy = false
        break
      case '--help':
      case '-h':
        console.log(USAGE)
        process.exit(0)
      // falls through (exit)
      default:
        console.error(`bench: unknown flag ${a}\n${USAGE}`)
        process.exit(2)
    }
  }
  return s
}

const s = parse(process.argv.slice(2))

if (s.only.has('micro')) {
  console.log('\n## Micro (ns per call, one core, no I/O)\n')
  const dir = resolve(import.meta.dirname, 'micro')
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.bench.ts'))
    .sort()) {
    spawnSync(process.execPath, [resolve(dir, f)], { stdio: 'inherit' })
  }
}
/** A scenario that fails is reported and the next one runs. */
async function step<T>(name: string, fn: () => Promise<T>, fallback: T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    console.error(`\nbench: ${name} failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exitCode = 1
    return fallback
  }
}

if (s.only.has('closed')) await step('closed loop', () => closedLoop(s), undefined)
if (s.only.has('large')) await step('large bodies', () => largeBodies(s), undefined)
let baseline = new Map<string, Record<string, number>>()
if (s.only.has('open') || s.only.has('reload')) baseline = await step('fixed rate', () => fixedRate(s), baseline)
if (s.only.has('reload')) await step('reload under load', () => reloadUnderLoad(s, baseline), undefined)
if (s.only.has('memory')) await step('memory', () => memory(s), undefined)
if (s.only.has('accept')) await step('accept burst', () => acceptBurst(s), undefined)
if (s.only.has('scale')) await step('scale', () => scale(s.scaleWorkers), undefined)
if (s.only.has('tls-memory')) await step('TLS memory', () => tlsMemory(s), undefined)
if (s.only.has('soak')) await step('soak', () => soak(s), undefined)
