// The accept burst's instruments: h2load's figures for a burst of new
// clients, and the listening socket's accept queue sampled while it runs.
//
// h2load's "time to 1st byte" runs from each client's connect() to the
// first response byte: the client-visible figure. It also holds h2load's
// own pace: one thread calls connect() for every client, then writes each
// request once its loop sees the socket writable, so a client's request
// leaves tens of milliseconds after its connect whatever the proxy does.
// That part is h2load's "time for connect", reported beside it. The accept
// queue (Recv-Q of the listening socket, from `ss`) says how long clients
// waited to be accepted at all: the part the proxy's accept loop owns.

import { spawn, spawnSync } from 'node:child_process'
import { has } from './procs.ts'

export interface Burst {
  answered: number
  errors: number
  /** Connect to first response byte, mean and slowest client. */
  meanMs: number
  maxMs: number
  /** h2load's "time for connect" (mean): connect() until its loop sees the socket writable and can send the request. */
  connectMs: number
}

export interface QueueFigures {
  /** Most connections seen waiting in the accept queue. */
  max: number
  /** From the first sample with a connection waiting to the last one: how long the queue held any. */
  busyMs: number
  /** Median time between samples (the resolution of busyMs). */
  stepMs: number
}

const pin = (cpus: string | null): string[] => (cpus !== null && has('taskset') ? ['taskset', '-c', cpus] : [])

/** BURST clients at once on `port` (h2load --h1, one request each). */
export function h2loadBurst(port: number, conns: number, cpus: string | null): Burst {
  const argv = [...pin(cpus), 'h2load', '--h1', '-c', String(conns), '-n', String(conns), '-T', '30', `http://127.0.0.1:${port}/`]
  const out = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' }).stdout
  const ms = (v: string | undefined, unit: string | undefined): number => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1)
  // min, max, mean, sd, +/- sd
  const row = (name: string): RegExpExecArray | null => new RegExp(`${name}:\\s+([\\d.]+)(us|ms|s)\\s+([\\d.]+)(us|ms|s)\\s+([\\d.]+)(us|ms|s)`).exec(out)
  const ttfb = row('time to 1st byte')
  const connect = row('time for connect')
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)
  return {
    answered: Number(req?.[1] ?? 0),
    errors: Number(req?.[2] ?? 0) + Number(req?.[3] ?? 0),
    meanMs: ms(ttfb?.[5], ttfb?.[6]),
    maxMs: ms(ttfb?.[3], ttfb?.[4]),
    connectMs: ms(connect?.[5], connect?.[6]),
  }
}

/**
 * Samples the accept queue of every socket listening on `port` (summed:
 * with several workers each has its own) as fast as `ss` runs, until
 * stop(). A few milliseconds per sample on a loaded machine.
 */
export function sampleAcceptQueue(port: number, cpus: string | null): { stop(): Promise<QueueFigures> } {
  const script = `while :; do printf '%s ' "$(date +%s%N)"; ss -ltnH 'sport = :${port}' | awk '{ q += $2 } END { print q + 0 }'; done`
  const argv = [...pin(cpus), 'bash', '-c', script]
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  return {
    async stop(): Promise<QueueFigures> {
      child.kill('SIGKILL')
      await exited
      const samples: Array<[number, number]> = []
      for (const line of out.split('\n')) {
        const m = /^(\d+) (\d+)$/.exec(line)
        if (m !== null) samples.push([Number(m[1]) / 1e6, Number(m[2])])
      }
      const busy = samples.filter(([, q]) => q > 0)
      const steps = samples.slice(1).map(([t], i) => t - (samples[i] as [number, number])[0])
      return {
        max: Math.max(0, ...samples.map(([, q]) => q)),
        busyMs: busy.length === 0 ? 0 : (busy.at(-1) as [number, number])[0] - (busy[0] as [number, number])[0],
        stepMs: median(steps),
      }
    },
  }
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}
