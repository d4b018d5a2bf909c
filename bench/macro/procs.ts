// Processes of a macro benchmark: the real balancer, the upstream, HAProxy
// when installed, nginx (the TLS memory scenario), the load generators, wrk when installed; and what /proc
// says about them (RSS and CPU time of a process and its descendants).

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const NODE = process.execPath
/** File descriptors for every process started here: 10,000 connections need more than the usual 1024. */
const NOFILE = 65536

export interface Proc {
  child: ChildProcess
  pid: number
  stop(): Promise<void>
}

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** Runs argv under a raised open-file limit (and taskset when cpus is given). */
function start(argv: string[], cpus: string | null, stdout: 'pipe' | 'ignore' | number = 'pipe'): ChildProcess {
  const pin = cpus !== null && has('taskset') ? ['taskset', '-c', cpus] : []
  const script = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`
  return spawn('sh', ['-c', script, 'sh', ...pin, ...argv], { stdio: ['ignore', stdout, 'inherit'], cwd: ROOT })
}

function firstLine(child: ChildProcess, ms = 20_000): Promise<string> {
  return new Promise((res, rej) => {
    let buf = ''
    const t = setTimeout(() => rej(new Error('no output in time')), ms)
    child.stdout?.setEncoding('utf8')
    const onData = (c: string): void => {
      buf += c
      const i = buf.indexOf('\n')
      if (i < 0) return
      clearTimeout(t)
      child.stdout?.off('data', onData)
      res(buf.slice(0, i))
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => rej(new Error(`exited with ${code} before printing`)))
  })
}

function stopper(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): () => Promise<void> {
  return () =>
    new Promise((res) => {
      if (child.exitCode !== null || child.signalCode !== null) return res()
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000)
      child.once('exit', () => {
        clearTimeout(t)
        res()
      })
      child.kill(signal)
    })
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.on('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0))
    })
  })
}

/** Two upstream ports answering every request with a body of `bodyBytes` (default: 19 bytes). */
export async function startUpstream(cpus: string | null, bodyBytes?: number): Promise<Proc & { ports: number[] }> {
  const child = start([NODE, 'bench/macro/upstream.ts', ...(bodyBytes === undefined ? [] : ['--body-bytes', String(bodyBytes)]), '0', '0'], cpus)
  const { ports } = JSON.parse(await firstLine(child)) as { ports: number[] }
  return { child, pid: child.pid ?? 0, ports, stop: stopper(child) }
}

export interface Target extends Proc {
  name: string
  port: number
  /** Where the proxy's log goes (warnings and errors only for the balancer). */
  log: string | null
  /** The balancer's admin API; null for other proxies. */
  api: string | null
}

/** A self-signed P-256 certificate for the TLS scenarios (what the peers get too). */
export function benchCert(): { certFile: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-cert-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=bench.local',
      '-addext',
      'subjectAltName=DNS:bench.local',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  )
  if (r.status !== 0) throw new Error('openssl could not make the bench certificate')
  return { certFile, keyFile }
}

/** With no upstreams, the balancer starts with an empty configuration and no server is added. */
export async function startBalancer(workers: number, upstreams: number[], cpus: string | null, extra: string[] = [], tls: { certFile: string; keyFile: string } | null = null): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-'))
  const [apiPort, port] = [await freePort(), await freePort()]
  const args = [NODE, 'bin/balancer.js', '--api', `127.0.0.1:${apiPort}`, '--config', join(dir, 'b.json'), '--workers', String(workers), '--log-level', 'warn', ...extra]
  const log = join(dir, 'balancer.log')
  const child = start(args, cpus, openSync(log, 'w'))
  const api = `http://127.0.0.1:${apiPort}`
  const end = Date.now() + 30_000
  for (;;) {
    try {
      if ((await fetch(`${api}/`)).ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > end || child.exitCode !== null) throw new Error('the balancer did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  if (upstreams.length === 0) return { name: `balancer w${workers}`, child, pid: child.pid ?? 0, port, api, log, stop: stopper(child) }
  const res = await fetch(`${api}/server`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      address: `127.0.0.1:${port}`,
      ...(tls === null ? {} : { tls: { Certificates: [{ CertFile: tls.certFile, KeyFile: tls.keyFile }], Alpn: ['http/1.1'] } }),
      upstreams: upstreams.map((p) => ({ Target: '127.0.0.1', Port: p })),
    }),
  })
  if (res.status !== 201) throw new Error(`POST /server answered ${res.status}: ${await res.text()}`)
  return { name: `balancer w${workers}`, child, pid: child.pid ?? 0, port, api, log, stop: stopper(child) }
}

/** HAProxy with the equivalent config (keep-alive to the upstreams, the same forwarding headers), one thread. */
export async function startHaproxy(upstreams: number[], cpus: string | null): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-'))
  const port = await freePort()
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(
    cfg,
    [
      'global',
      '  nbthread 1',
      '  maxconn 9000',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 10m',
      '  timeout server 60s',
      '  http-reuse always',
      '  option forwardfor',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  http-request set-header X-Forwarded-Proto http',
      '  default_backend be',
      'backend be',
      '  balance roundrobin',
      ...upstreams.map((p, i) => `  server s${i} 127.0.0.1:${p}`),
      '',
    ].join('\n'),
  )
  const child = start(['haproxy', '-q', '-f', cfg], cpus, 'ignore')
  const end = Date.now() + 10_000
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/`)
      break
    } catch {
      if (Date.now() > end || child.exitCode !== null) throw new Error('haproxy did not start')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return { name: 'haproxy', child, pid: child.pid ?? 0, port, api: null, log: null, stop: stopper(child) }
}

/** nginx terminating TLS with the same certificate, one worker, keep-alive to the upstreams (the TLS memory scenario's peer). */
export async function startNginx(upstreams: number[], cpus: string | null, tls: { certFile: string; keyFile: string }): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-'))
  const port = await freePort()
  const cfg = join(dir, 'nginx.conf')
  writeFileSync(
    cfg,
    [
      'daemon off;',
      'master_process on;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'worker_rlimit_nofile 65536;',
      'events { worker_connections 20000; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${dir}/body;`,
      `  proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fcgi;`,
      `  uwsgi_temp_path ${dir}/uwsgi;`,
      `  scgi_temp_path ${dir}/scgi;`,
      '  keepalive_timeout 10m;',
      '  keepalive_requests 1000000;',
      `  upstream be { ${upstreams.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; }`,
      '  server {',
      `    listen 127.0.0.1:${port} ssl;`,
      `    ssl_certificate ${tls.certFile};`,
      `    ssl_certificate_key ${tls.keyFile};`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_session_cache shared:SSL:10m;',
      '    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;',
      '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto https; }',
      '  }',
      '}',
      '',
    ].join('\n'),
  )
  const child = start(['nginx', '-p', dir, '-c', cfg], cpus, 'ignore')
  const end = Date.now() + 10_000
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = createServer()
      s.once('error', () => res(true)) // taken: nginx listens
      s.listen(port, '127.0.0.1', () => s.close(() => res(false)))
    })
    if (ok) break
    if (Date.now() > end || child.exitCode !== null) throw new Error('nginx did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { name: 'nginx', child, pid: child.pid ?? 0, port, api: null, log: null, stop: stopper(child) }
}

/** Runs the load generator to completion and returns its JSON result. */
export async function load(spec: Record<string, unknown>, cpus: string | null): Promise<Record<string, unknown>> {
  const child = start([NODE, 'bench/macro/loadgen.ts', JSON.stringify(spec)], cpus)
  const line = await firstLine(child, Number(spec.durationMs ?? 10_000) + Number(spec.warmupMs ?? 1000) + 60_000)
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)))
  return JSON.parse(line) as Record<string, unknown>
}

/** Opens and keeps `conns` idle keep-alive connections (one request each); stop() closes them. */
export async function hold(port: number, conns: number, cpus: string | null, tls = false): Promise<Proc & { held: number; errors: number }> {
  const child = start([NODE, 'bench/macro/loadgen.ts', JSON.stringify({ mode: 'hold', port, conns, tls })], cpus)
  const r = JSON.parse(await firstLine(child, 120_000)) as { held: number; errors: number }
  return { child, pid: child.pid ?? 0, held: r.held, errors: r.errors, stop: stopper(child) }
}

/** wrk's closed-loop figures: requests/s and latency percentiles in ms. */
export function wrk(port: number, conns: number, seconds: number, cpus: string | null): { rps: number; p50: number; p99: number; errors: number } {
  const pin = cpus !== null && has('taskset') ? ['taskset', '-c', cpus] : []
  const argv = [...pin, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`]
  const out = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' }).stdout
  const ms = (s: string | undefined): number => {
    const m = /^([\d.]+)(us|ms|s)$/.exec(s ?? '')
    if (m === null) return NaN
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1)
  }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
  const errs = [...out.matchAll(/(?:Non-2xx or 3xx responses|Socket errors:.*?):\s*(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
  return { rps: Math.round(rps), p50: ms(/\n\s+50%\s+(\S+)/.exec(out)?.[1]), p99: ms(/\n\s+99%\s+(\S+)/.exec(out)?.[1]), errors: errs }
}

interface ProcStat {
  ppid: number
  ticks: number
  rssKiB: number
}

function procTable(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const status = readFileSync(`/proc/${d}/status`, 'utf8')
      const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
      out.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), rssKiB: rss })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** RSS (MiB) of pid itself and of each of its child processes. */
export function processRss(pid: number): { self: number; children: number[]; selfPrivate: number; childrenPrivate: number[] } {
  const t = procTable()
  const kids = [...t.entries()].filter(([, s]) => s.ppid === pid)
  return {
    self: (t.get(pid)?.rssKiB ?? 0) / 1024,
    children: kids.map(([, s]) => s.rssKiB / 1024),
    selfPrivate: privateMiB(pid),
    childrenPrivate: kids.map(([p]) => privateMiB(p)),
  }
}

/**
 * MiB of pid's resident pages no other process maps (Private_Clean +
 * Private_Dirty): RSS also counts the pages of the node binary and the
 * shared libraries that every process running them shares; NaN where
 * /proc/PID/smaps_rollup cannot be read.
 */
function privateMiB(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
    const kib = (name: string): number => Number(new RegExp(`\\n${name}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN)
    return (kib('Private_Clean') + kib('Private_Dirty')) / 1024
  } catch {
    return NaN
  }
}

/** CPU ticks (user + system) and RSS of pid and all its descendants. */
export function treeUsage(pid: number): { ticks: number; rssMiB: number; procs: number } {
  const t = procTable()
  let ticks = 0
  let rss = 0
  let procs = 0
  for (const [p, s] of t) {
    let q = p
    let cur: ProcStat | undefined = s
    while (q !== pid && cur !== undefined && cur.ppid > 1) {
      q = cur.ppid
      cur = t.get(q)
    }
    if (q !== pid) continue
    ticks += s.ticks
    rss += s.rssKiB
    procs++
  }
  return { ticks, rssMiB: rss / 1024, procs }
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
