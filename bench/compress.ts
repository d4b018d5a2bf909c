// Compression cost: `node bench/compress.ts` (after npm ci). An engine in
// this process with a route to an upstream in a child process (so its CPU is
// not counted here), the same route with the compress group, and keep-alive
// GETs from this process for a 15 KiB JSON body and a 256 KiB HTML page, as
// they are and with each coding. CPU per request is this process's (engine,
// node:zlib threads and the client, which is the same in every row), so
// compare rows with each other, not with other benchmarks. Prints a table;
// asserts nothing.

import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { compile } from '../src/compiler/compile.ts'
import { Engine } from '../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../src/engine/types.ts'
import { parseConfig } from '../src/model/parse.ts'

const quiet = { info() {}, warn() {}, error() {} }

const UPSTREAM = `
const { createServer } = require('node:http')
const rows = []
for (let i = 0; i < 200; i++) rows.push({ id: i, name: 'item ' + i, price: (i * 37) % 1000 / 10, tags: ['a' + (i % 7), 'b' + (i % 11)], inStock: i % 3 !== 0 })
const json = Buffer.from(JSON.stringify(rows))
let html = '<!doctype html><html><head><title>Catalogue</title></head><body><table>'
for (let i = 0; html.length < 262144; i++) html += '<tr><td class="id">' + i + '</td><td class="name">Item number ' + i + '</td><td>' + ((i * 37) % 1000) / 10 + ' EUR</td></tr>\\n'
const page = Buffer.from(html).subarray(0, 262144)
const s = createServer((q, r) => {
  const big = q.url.startsWith('/zip/page') || q.url.startsWith('/page')
  r.setHeader('content-type', big ? 'text/html' : 'application/json')
  r.end(big ? page : json)
}).listen(0, '127.0.0.1', () => console.log(s.address().port))
`

function get(port: number, path: string, ae: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: ae === '' ? {} : { 'accept-encoding': ae } }, (res) => {
      let n = 0
      res.on('data', (d: Buffer) => {
        n += d.length
      })
      res.on('end', () => resolve(n))
    })
    req.on('error', reject)
    req.end()
  })
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, ['-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] })
  const upPort = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))))
  const u = [{ Target: '127.0.0.1', Port: upPort }]
  // compile() refuses port 0: compile on a placeholder port, then bind the engine on a free one by hand.
  const cfg = parseConfig({ servers: [{ address: '127.0.0.1:1', upstreams: u, routes: [{ name: 'zip', filter: { PathPrefix: '/zip' }, upstreams: u, compress: {} }] }] })
  const snap = compile(cfg, 1)
  const plan = [...snap.listeners.values()][0]
  if (plan === undefined) throw new Error('no listener')
  const port0 = { ...plan, listen: { key: '127.0.0.1:0', host: '127.0.0.1', port: 0 } }
  const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: quiet })
  await engine.apply({ ...snap, listeners: new Map([['127.0.0.1:0', port0]]) })
  const port = engine.boundPort('127.0.0.1:0') ?? 0
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  const rows = ['body          route     coding   req/s   cpu us/req   bytes/resp']
  for (const [body, n] of [
    ['json 15 KiB', 4000],
    ['html 256 KiB', 600],
  ] as const) {
    const path = body.startsWith('json') ? '/data' : '/page'
    for (const [route, ae] of [
      ['plain', ''],
      ['compress', ''],
      ['compress', 'gzip'],
      ['compress', 'br'],
      ['compress', 'zstd'],
    ] as const) {
      const p = route === 'plain' ? path : `/zip${path}`
      for (let w = 0; w < n / 10; w++) await get(port, p, ae, agent) // warm: the JIT and the connections
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      let i = 0
      let bytes = 0
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (i++ < n) bytes = await get(port, p, ae, agent)
        }),
      )
      const ms = performance.now() - t0
      const c = process.cpuUsage(c0)
      rows.push(
        `${body.padEnd(13)} ${route.padEnd(9)} ${(ae === '' ? 'none' : ae).padEnd(8)} ${String(Math.round((n / ms) * 1000)).padStart(5)}   ${((c.user + c.system) / n).toFixed(0).padStart(10)}   ${String(bytes).padStart(10)}`,
      )
    }
  }
  agent.destroy()
  await engine.shutdown(0)
  child.kill()
  console.log(rows.join('\n'))
}

await main()
