// `node bench/h2-abuse.ts [--conns N] [--only TEXT]`: what an abusive
// HTTP/2 client costs the balancer in memory. For each abuse case of docs/http2.md
// ("Limits"), a fresh balancer process (one worker, h2c) is started, N
// connections from the raw peer (test/support/h2peer.ts) carry out the
// abuse at once and hold whatever the balancer lets them hold, and the
// balancer's resident memory (its process tree, from /proc) is sampled
// until the case settles. Printed per case: the peak growth over the
// process after warm-up, per connection, and what the balancer did (GOAWAY
// and its code, streams refused, requests that reached an upstream).
// Resident memory includes garbage not yet collected: the figures are what
// a connection made the process grow by, an upper bound of what it holds.
// Asserts nothing; the bounds themselves are tested in
// test/engine/h2-abuse.test.ts.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { E, F, H2Peer, T, block, frame, goawayCode, indexed, settings, u32 } from '../test/support/h2peer.ts'
import { freePort, startUpstream, treeUsage } from './macro/procs.ts'

const ROOT = resolve(import.meta.dirname, '..')
const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i < 0 ? undefined : args[i + 1]
}
const CONNS = Number(flag('--conns') ?? 20)
/** --only TEXT: the cases whose name contains TEXT. */
const ONLY = flag('--only') ?? ''
const MAX_HEADER_BYTES = 32 * 1024

/** An upstream that reads request heads and never answers (`sink`: never reads at all); counts the heads it got. */
function holdServer(read: boolean): Promise<{ server: Server; port: number; heads: () => number; socks: Set<Socket> }> {
  let heads = 0
  const socks = new Set<Socket>()
  const server = createServer((s) => {
    socks.add(s)
    s.on('close', () => socks.delete(s))
    s.on('error', () => {})
    if (!read) return void s.pause()
    s.on('data', (d: Buffer) => {
      for (let i = d.indexOf('\r\n\r\n'); i >= 0; i = d.indexOf('\r\n\r\n', i + 4)) heads++
    })
  })
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res({ server, port: (server.address() as AddressInfo).port, heads: () => heads, socks })))
}

interface Balancer {
  child: ChildProcess
  port: number
  stop(): Promise<void>
}

async function startBalancer(routes: object[]): Promise<Balancer> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-h2abuse-'))
  const [apiPort, port] = [await freePort(), await freePort()]
  writeFileSync(join(dir, 'b.json'), JSON.stringify({ servers: [{ address: `127.0.0.1:${port}`, Protocols: ['http/1.1', 'h2c'], upstreams: [], routes }] }))
  const script = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"'
  const argv = [process.execPath, 'bin/balancer.js', '--api', `127.0.0.1:${apiPort}`, '--config', join(dir, 'b.json'), '--workers', '1', '--log-level', 'error']
  const child = spawn('sh', ['-c', script, 'sh', ...argv], { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT })
  const end = Date.now() + 30_000
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${apiPort}/`)).ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > end || child.exitCode !== null) throw new Error('the balancer did not start')
    await sleep(100)
  }
  const stop = (): Promise<void> =>
    new Promise((res) => {
      if (child.exitCode !== null) return res()
      child.once('exit', () => res())
      child.kill('SIGKILL')
    })
  return { child, port, stop }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface Outcome {
  /** What the balancer did, in words. */
  did: string
}

interface Case {
  name: string
  /** The bound docs/http2.md gives for it. */
  bound: string
  run(peers: H2Peer[], ups: Upstreams): Promise<Outcome>
}

interface Upstreams {
  hold: () => number
}

function goaways(peers: H2Peer[]): string {
  const codes = new Map<number, number>()
  for (const p of peers) {
    const g = p.goaway()
    const code = g === undefined ? -1 : goawayCode(g)
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  const name = (c: number): string => (c === -1 ? 'open' : c === E.ENHANCE_YOUR_CALM ? 'GOAWAY ENHANCE_YOUR_CALM' : c === E.NO_ERROR ? 'GOAWAY NO_ERROR' : `GOAWAY ${c}`)
  return [...codes].map(([c, n]) => `${n}x ${name(c)}`).join(', ')
}

async function settled(peers: H2Peer[], done: (p: H2Peer) => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!peers.every(done) && Date.now() < end) await sleep(20)
}

const REQ: Array<[string, string]> = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':authority', 'abuse.test'],
]

const CASES: Case[] = [
  {
    name: 'idle connection (reference)',
    bound: '--idle-timeout',
    async run() {
      return { did: 'kept open' }
    },
  },
  {
    name: 'rapid reset, 1,000 streams in one burst',
    bound: 'reset budget 100 + 10/s',
    async run(peers, ups) {
      const before = ups.hold()
      for (const p of peers) {
        const bufs: Buffer[] = []
        for (let i = 0; i < 1000; i++) bufs.push(p.headers(1 + 2 * i, '/hold'), frame(T.RST_STREAM, 0, 1 + 2 * i, u32(E.CANCEL)))
        p.write(...bufs)
      }
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: `${goaways(peers)}; ${((ups.hold() - before) / peers.length).toFixed(0)} upstream requests per connection` }
    },
  },
  {
    name: 'rapid reset, one stream per read',
    bound: 'reset budget 100 + 10/s',
    async run(peers, ups) {
      const before = ups.hold()
      await Promise.all(
        peers.map(async (p) => {
          for (let i = 0; i < 1000 && p.goaway() === undefined && !p.closed; i++) {
            p.write(p.headers(1 + 2 * i, '/hold'))
            await sleep(2)
            p.write(frame(T.RST_STREAM, 0, 1 + 2 * i, u32(E.CANCEL)))
          }
        }),
      )
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: `${goaways(peers)}; ${((ups.hold() - before) / peers.length).toFixed(0)} upstream requests per connection` }
    },
  },
  {
    name: 'CONTINUATION flood (200 x 1 KB)',
    bound: 'header block 32 KiB / 32 frames',
    async run(peers) {
      const junk = block([['x-filler', 'y'.repeat(1000)]])
      for (const p of peers) {
        p.write(frame(T.HEADERS, 0, 1, block([...REQ, [':path', '/hold']])))
        p.write(...Array.from({ length: 200 }, () => frame(T.CONTINUATION, 0, 1, junk)))
      }
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: goaways(peers) }
    },
  },
  {
    name: 'header block held unfinished (30 KB)',
    bound: '32 KiB, --header-timeout',
    async run(peers) {
      const junk = block([['x-filler', 'y'.repeat(1000)]])
      for (const p of peers) {
        p.write(frame(T.HEADERS, 0, 1, block([...REQ, [':path', '/hold']])))
        p.write(...Array.from({ length: 30 }, () => frame(T.CONTINUATION, 0, 1, junk)))
      }
      await sleep(1000)
      return { did: goaways(peers) }
    },
  },
  {
    name: 'PING flood (10,000)',
    bound: 'calm budget 1,000 + 100/s',
    async run(peers) {
      const ping = frame(T.PING, 0, 0, Buffer.alloc(8))
      for (const p of peers) p.write(...Array.from({ length: 10_000 }, () => ping))
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: goaways(peers) }
    },
  },
  {
    name: 'SETTINGS flood (10,000)',
    bound: 'calm budget 1,000 + 100/s',
    async run(peers) {
      const s = settings([[4, 65535]])
      for (const p of peers) p.write(...Array.from({ length: 10_000 }, () => s))
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: goaways(peers) }
    },
  },
  {
    name: 'empty DATA flood (10,000)',
    bound: 'calm budget 1,000 + 100/s',
    async run(peers) {
      const empty = frame(T.DATA, 0, 1)
      for (const p of peers) p.write(p.headers(1, '/hold', { method: 'POST', end: false }), ...Array.from({ length: 10_000 }, () => empty))
      await settled(peers, (p) => p.goaway() !== undefined)
      return { did: goaways(peers) }
    },
  },
  {
    name: 'HPACK bomb, 100 streams x 4 MB decoded',
    bound: '--max-header-bytes decoded, table 4 KiB',
    async run(peers) {
      const refs = Buffer.concat(Array.from({ length: 1000 }, () => indexed(62)))
      for (const p of peers) {
        const bufs: Buffer[] = []
        for (let i = 0; i < 100; i++)
          bufs.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1 + 2 * i, Buffer.concat([block([...REQ, [':path', '/hold']]), block([['x-big', 'b'.repeat(4000)]], true), refs])))
        p.write(...bufs)
      }
      await settled(peers, (p) => p.frames.filter((f) => f.type === T.HEADERS).length >= 100)
      const answered = peers.reduce((n, p) => n + p.frames.filter((f) => f.type === T.HEADERS).length, 0)
      return { did: `${answered / peers.length} streams answered 431 per connection; ${goaways(peers)}` }
    },
  },
  {
    name: '105 streams held, 24 KB of fields each',
    bound: '100 streams x --max-header-bytes',
    async run(peers, ups) {
      const before = ups.hold()
      const fields: Array<[string, string]> = Array.from({ length: 24 }, (_, i) => [`x-f${i}`, 'v'.repeat(1000)])
      for (const p of peers) {
        const bufs: Buffer[] = []
        for (let i = 0; i < 105; i++) {
          // Over one frame's 16 KiB: HEADERS, then the rest in a CONTINUATION.
          const b = block([...REQ, [':path', `/hold/${i}`], ...fields])
          bufs.push(frame(T.HEADERS, F.END_STREAM, 1 + 2 * i, b.subarray(0, 16_384)), frame(T.CONTINUATION, F.END_HEADERS, 1 + 2 * i, b.subarray(16_384)))
        }
        p.write(...bufs)
      }
      await settled(peers, (p) => p.frames.filter((f) => f.type === T.RST_STREAM).length >= 5)
      const want = before + 100 * peers.length
      const end = Date.now() + 15_000
      while (ups.hold() < want && Date.now() < end) await sleep(20)
      const refused = peers.reduce((n, p) => n + p.frames.filter((f) => f.type === T.RST_STREAM && f.payload.readUInt32BE(0) === E.REFUSED_STREAM).length, 0)
      return { did: `${((ups.hold() - before) / peers.length).toFixed(0)} held upstream, ${refused / peers.length} refused per connection; ${goaways(peers)}` }
    },
  },
  {
    name: 'window 0, 100 downloads of 8 MiB',
    bound: 'one upstream read (64 KiB) a stream',
    async run(peers) {
      for (const p of peers) {
        const bufs: Buffer[] = []
        for (let i = 0; i < 100; i++) bufs.push(p.headers(1 + 2 * i, `/big/${i}`))
        p.write(...bufs)
      }
      await settled(peers, (p) => p.frames.filter((f) => f.type === T.HEADERS).length >= 100)
      await sleep(1000)
      const data = peers.reduce((n, p) => n + p.frames.filter((f) => f.type === T.DATA).length, 0)
      const heads = peers.reduce((n, p) => n + p.frames.filter((f) => f.type === T.HEADERS).length, 0)
      return { did: `${heads / peers.length} responses begun per connection, ${data} DATA frames sent; ${goaways(peers)}` }
    },
  },
  {
    name: '100 uploads (1 MiB in all) to an upstream that never reads',
    bound: '64 KiB a stream, 1 MiB a connection',
    async run(peers) {
      // 10 KiB on each of 100 streams: all the connection's window (1 MiB) allows.
      const chunk = Buffer.alloc(10_240, 'u')
      for (const p of peers) {
        const bufs: Buffer[] = []
        for (let i = 0; i < 100; i++) {
          const id = 1 + 2 * i
          bufs.push(p.headers(id, `/sink/${i}`, { method: 'POST', end: false, extra: [['content-length', String(1 << 20)]] }), frame(T.DATA, 0, id, chunk))
        }
        p.write(...bufs)
      }
      await sleep(1500)
      return { did: goaways(peers) }
    },
  },
]

async function main(): Promise<void> {
  const big = await startUpstream(null, 8 << 20)
  const hold = await holdServer(true)
  const sink = await holdServer(false)
  const small = await startUpstream(null)
  const up = (port: number): object[] => [{ Target: '127.0.0.1', Port: port }]
  const routes = [
    { name: 'hold', filter: { PathPrefix: '/hold' }, upstreams: up(hold.port) },
    { name: 'big', filter: { PathPrefix: '/big' }, upstreams: up(big.ports[0] as number) },
    { name: 'sink', filter: { PathPrefix: '/sink' }, upstreams: up(sink.port) },
    { name: 'small', filter: { PathPrefix: '/' }, upstreams: up(small.ports[0] as number) },
  ]
  console.log(`HTTP/2 abuse: balancer memory per connection, ${CONNS} abusive connections per case, --max-header-bytes ${MAX_HEADER_BYTES / 1024} KiB`)
  console.log('| case | bound | peak growth per connection | what the balancer did |')
  console.log('|---|---|---|---|')
  for (const c of CASES) {
    if (!c.name.includes(ONLY)) continue
    const bal = await startBalancer(routes)
    try {
      // Warm-up: a few ordinary streams, so code paths are compiled before the baseline.
      const warm = await H2Peer.open(bal.port)
      for (let i = 0; i < 50; i++) warm.write(warm.headers(1 + 2 * i, '/'))
      await settled([warm], (p) => p.frames.filter((f) => f.type === T.DATA && (f.flags & F.END_STREAM) !== 0).length >= 50)
      warm.close()
      await sleep(300)
      const pid = bal.child.pid as number
      const base = treeUsage(pid).rssMiB
      let peak = base
      const sampler = setInterval(() => (peak = Math.max(peak, treeUsage(pid).rssMiB)), 25)
      const peers = await Promise.all(Array.from({ length: CONNS }, () => H2Peer.open(bal.port, c.name.startsWith('window 0') ? { settings: [[4, 0]] } : {})))
      const out = await c.run(peers, { hold: hold.heads })
      await sleep(200)
      peak = Math.max(peak, treeUsage(pid).rssMiB)
      clearInterval(sampler)
      const perConn = ((peak - base) * 1024) / CONNS
      console.log(`| ${c.name} | ${c.bound} | ${perConn < 0 ? 0 : perConn.toFixed(0)} KiB | ${out.did} |`)
      for (const p of peers) p.close()
    } finally {
      await bal.stop()
      for (const s of [...hold.socks, ...sink.socks]) s.destroy()
    }
  }
  await big.stop()
  await small.stop()
  hold.server.close()
  sink.server.close()
}

await main()
