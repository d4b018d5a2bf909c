// The configuration at scale: the real balancer (--workers 1 or as given, file store)
// started on 10 servers, then on 1,000 servers with 10 routes each and 5
// upstreams per route (10,000 routes, 50,000 upstreams), and on the same
// with 1 upstream per route (to tell a route's memory from an upstream's).
// For each: time to start, RSS at rest, GET / and 200 API writes that each
// change one upstream of one server (PUT .../upstream/{target}-{port}),
// p50 and p99 of their wall time, and the size of the file (replaced whole
// per write below 1 MiB; above, each write is appended to its journal and
// the file is rewritten per fold). Upstreams are never contacted (no traffic, no health
// checks); servers listen on 127.95.x.y, one port from the OS.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, treeUsage } from './procs.ts'
import { table } from './scenarios.ts'

interface Shape {
  name: string
  servers: number
  routes: number
  upstreams: number
}

const SHAPES: Shape[] = [
  { name: '10 servers', servers: 10, routes: 10, upstreams: 5 },
  { name: '1,000 servers, 1 upstream/route', servers: 1000, routes: 10, upstreams: 1 },
  { name: '1,000 servers', servers: 1000, routes: 10, upstreams: 5 },
]
const WRITES = 200
const GETS = 20

function address(i: number, port: number): string {
  return `127.95.${Math.floor(i / 250)}.${(i % 250) + 1}:${port}`
}

/** Route r's upstream k of server i: a distinct 10.x.y.z:8080 for each. */
function target(sh: Shape, i: number, r: number, k: number): string {
  const g = (i * sh.routes + r) * sh.upstreams + k
  return `10.${(g >> 16) & 255}.${(g >> 8) & 255}.${g & 255}`
}

function config(sh: Shape, port: number): unknown[] {
  return Array.from({ length: sh.servers }, (_, i) => ({
    address: address(i, port),
    upstreams: [{ Target: '127.0.0.1', Port: 1 + i }],
    routes: Array.from({ length: sh.routes }, (_, r) => ({
      name: `r${r}`,
      filter: { Hosts: [`r${r}.s${i}.example.com`] },
      upstreams: Array.from({ length: sh.upstreams }, (_, k) => ({ Target: target(sh, i, r, k), Port: 8080 })),
    })),
  }))
}

const pct = (xs: number[], q: number): number => {
  const a = [...xs].sort((x, y) => x - y)
  return a[Math.min(a.length - 1, Math.floor(q * a.length))] ?? NaN
}

async function measure(sh: Shape, workers: number): Promise<Array<string | number>> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-scale-'))
  const file = join(dir, 'b.json')
  const port = await freePort()
  writeFileSync(file, JSON.stringify(config(sh, port)))
  const apiPort = await freePort()
  const api = `http://127.0.0.1:${apiPort}`
  const t0 = performance.now()
  const child = spawn(process.execPath, ['bin/balancer.js', '--api', `127.0.0.1:${apiPort}`, '--config', file, '--workers', String(workers), '--log-level', 'warn'], { stdio: 'ignore' })
  try {
    for (;;) {
      try {
        if ((await fetch(`${api}/status`)).ok) break
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 180_000 || child.exitCode !== null) throw new Error(`the balancer did not start with ${sh.name}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const startS = (performance.now() - t0) / 1000
    await new Promise((r) => setTimeout(r, 3000))
    const rss = treeUsage(child.pid ?? 0).rssMiB
    const gets: number[] = []
    for (let i = 0; i < GETS; i++) {
      const g0 = performance.now()
      const res = await fetch(`${api}/`)
      await res.arrayBuffer()
      gets.push(performance.now() - g0)
    }
    // Each write changes one upstream's Weight on route r0 of the next server in turn.
    const writes: number[] = []
    for (let i = 0; i < WRITES + 10; i++) {
      const s = i % sh.servers
      const url = `${api}/server/${encodeURIComponent(address(s, port))}/route/r0/upstream/${target(sh, s, 0, 0)}-8080`
      const w0 = performance.now()
      const put = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Weight: 1 + (Math.floor(i / sh.servers) % 2 === 0 ? 1 : 0) }) })
      await put.arrayBuffer()
      if (put.status !== 200) throw new Error(`write ${i}: ${put.status}`)
      if (i >= 10) writes.push(performance.now() - w0) // the first 10 warm up
    }
    const routes = sh.servers * sh.routes
    const upstreams = sh.servers * (1 + sh.routes * sh.upstreams)
    return [sh.name, routes, upstreams, Number(startS.toFixed(1)), rss, pct(gets, 0.5), pct(writes, 0.5), pct(writes, 0.99), Math.round(statSync(file).size / 1024)]
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)))
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function scale(workerCounts: readonly number[]): Promise<void> {
  for (const w of workerCounts) await scaleWith(w)
}

async function scaleWith(workers: number): Promise<void> {
  const rows: Array<Array<string | number>> = []
  for (const sh of SHAPES) rows.push(await measure(sh, workers))
  table(
    `Configuration at scale: --workers ${workers}, file store; ${WRITES} API writes each changing one upstream of one server`,
    ['configuration', 'routes', 'upstreams', 'start s', 'RSS MiB', 'GET / p50 ms', 'write p50 ms', 'write p99 ms', 'file KiB'],
    rows,
  )
  const [small, one, five] = rows
  if (small !== undefined && one !== undefined && five !== undefined) {
    const n = (r: Array<string | number>, i: number): number => Number(r[i])
    const perUpstream = ((n(five, 4) - n(one, 4)) * 1024) / (n(five, 2) - n(one, 2))
    const perRoute = ((n(one, 4) - n(small, 4)) * 1024 - perUpstream * (n(one, 2) - n(small, 2))) / (n(one, 1) - n(small, 1))
    console.log(
      `\nmemory at rest: ${perUpstream.toFixed(2)} KiB per upstream, ${perRoute.toFixed(2)} KiB per route (with its share of its server and listener); write p50 at 1,000 servers / at 10: ${(n(five, 6) / n(small, 6)).toFixed(2)}x`,
    )
  }
}
