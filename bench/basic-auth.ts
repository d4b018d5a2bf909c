// BasicAuth cost: `node bench/basic-auth.ts` (after npm ci). An engine in
// this process with two routes to a local upstream, one open and one behind
// BasicAuth (a bcrypt hash from `htpasswd -B`, cost 5 and 10), then:
//   1. keep-alive GETs with valid credentials (verified once, then cached)
//      against the open route: the price of the cache lookup per request;
//   2. a flood of wrong passwords (each one a real bcrypt check) while a
//      valid client keeps sending: the serving thread's event-loop delay and
//      the valid client's latency show that hashing never blocks it.
// Prints a table; asserts nothing.

import { execFileSync } from 'node:child_process'
import { Agent, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { compile } from '../src/compiler/compile.ts'
import { Engine } from '../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../src/engine/types.ts'
import { parseConfig } from '../src/model/parse.ts'

const quiet = { info() {}, warn() {}, error() {} }

function get(port: number, path: string, auth: string | null, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: auth === null ? {} : { authorization: auth } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

async function main(): Promise<void> {
  const up = createServer((_q, s) => s.end('ok')).listen(0, '127.0.0.1')
  await new Promise((r) => up.once('listening', r))
  const upPort = (up.address() as AddressInfo).port
  const rows: string[] = []
  for (const cost of [5, 10]) {
    const line = execFileSync('htpasswd', ['-nbB', '-C', String(cost), 'alice', 'secret'], { encoding: 'utf8' }).trim()
    // compile() refuses port 0: compile on a placeholder port, then bind the engine on a free one by hand.
    const cfg = parseConfig({
      servers: [
        {
          address: '127.0.0.1:1',
          upstreams: [{ Target: '127.0.0.1', Port: upPort }],
          routes: [{ name: 'auth', filter: { PathPrefix: '/auth' }, upstreams: [{ Target: '127.0.0.1', Port: upPort }], access: { BasicAuth: [line] } }],
        },
      ],
    })
    const snap = compile(cfg, 1)
    const plan = [...snap.listeners.values()][0]
    if (plan === undefined) throw new Error('no listener')
    const port0 = { ...plan, listen: { key: '127.0.0.1:0', host: '127.0.0.1', port: 0 } }
    const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: quiet })
    await engine.apply({ ...snap, listeners: new Map([['127.0.0.1:0', port0]]) })
    const port = engine.boundPort('127.0.0.1:0') ?? 0
    const agent = new Agent({ keepAlive: true, maxSockets: 8 })
    const good = basic('alice', 'secret')
    await get(port, '/auth', good, agent) // the one verification
    for (const [name, path, auth] of [
      ['open route', '/', null],
      ['BasicAuth, cached', '/auth', good],
    ] as const) {
      const n = 4000
      const t0 = performance.now()
      let i = 0
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (i++ < n) await get(port, path, auth, agent)
        }),
      )
      const ms = performance.now() - t0
      rows.push(`cost ${cost}  ${name.padEnd(20)} ${Math.round((n / ms) * 1000)} req/s`)
    }
    const loop = monitorEventLoopDelay({ resolution: 1 })
    loop.enable()
    const flood = new Agent({ keepAlive: true, maxSockets: 16 })
    const wrong = basic('alice', 'wrong')
    const t1 = performance.now()
    let refused = 0
    const floodDone = Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let k = 0; k < (cost === 5 ? 25 : 4); k++) if ((await get(port, '/auth', wrong, flood)) === 401) refused++
      }),
    )
    const lat: number[] = []
    let stop = false
    const valid = (async () => {
      while (!stop) {
        const s = performance.now()
        await get(port, '/auth', good, agent)
        lat.push(performance.now() - s)
      }
    })()
    await floodDone
    const floodMs = performance.now() - t1
    stop = true
    await valid
    loop.disable()
    lat.sort((a, b) => a - b)
    rows.push(
      `cost ${cost}  wrong-password flood  ${refused} bcrypt checks in ${Math.round(floodMs)} ms; event loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms; valid client meanwhile: ${lat.length} requests, p50 ${lat[Math.floor(lat.length / 2)]?.toFixed(2)} ms, p99 ${lat[Math.floor(lat.length * 0.99)]?.toFixed(2)} ms`,
    )
    agent.destroy()
    flood.destroy()
    await engine.shutdown(0)
  }
  up.close()
  console.log(rows.join('\n'))
}

await main()
