// One listening socket per address takes a burst of new clients in its
// first readiness events (accept-batch.ts), where libuv alone takes one
// connection per turn: the clients of a burst are not left in the accept
// queue behind a busy loop.

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_PER_EVENT, acceptStats } from '../../src/engine/accept-batch.ts'
import { startEngine } from '../support/engine.ts'
import { until, within } from '../support/poll.ts'
import { snapshotFor, snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const BURST = 300

/**
 * A client process: opens `n` keep-alive connections at once, sends one
 * request on each, writes the number connected to `marker` once every
 * connection is up, and prints how many 200 answers it read.
 */
const CLIENT = `
const net = require('node:net'), fs = require('node:fs')
const [port, n, marker] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3]]
let connected = 0, ok = 0
for (let i = 0; i < n; i++) {
  const s = net.connect(port, '127.0.0.1')
  s.on('connect', () => {
    s.write('GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n')
    if (++connected === n) fs.writeFileSync(marker, String(connected))
  })
  let buf = ''
  s.on('data', (d) => {
    buf += d.toString('latin1')
    if (buf.startsWith('HTTP/1.1 200') && buf.endsWith('a')) {
      if (++ok === n) { console.log(String(ok)); process.exit(0) }
    }
  })
  s.on('error', () => {})
}
setTimeout(() => { console.log(String(ok)); process.exit(1) }, 20000)
`

describe('accepting a burst', () => {
  it('takes 300 waiting connections in the first turns after a blocked loop, MAX_PER_EVENT more per readiness event, and answers each', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
    cleanups.push(() => e.stop())
    const dir = mkdtempSync(join(tmpdir(), 'balancer-burst-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const marker = join(dir, 'connected')
    const child = spawn(process.execPath, ['-e', CLIENT, String(e.port), String(BURST), marker], { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanups.push(() => void child.kill())
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((r) => child.once('exit', r))
    // Block this process's loop (as a busy balancer's long turn does) until
    // the kernel has completed every handshake: all of them wait in the
    // listening socket's accept queue.
    const end = Date.now() + 15_000
    for (;;) {
      let text = ''
      try {
        text = readFileSync(marker, 'utf8')
      } catch {
        // not yet written
      }
      if (text === String(BURST) || Date.now() > end) break
    }
    expect(readFileSync(marker, 'utf8')).toBe(String(BURST))
    const extraBefore = acceptStats().extra
    // Count event-loop turns until the engine holds every connection.
    let turns = 0
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        turns++
        const held = e.engine.stats().listeners[0]?.connections ?? 0
        if (held >= BURST || turns > BURST * 2) resolve()
        else setImmediate(tick)
      }
      setImmediate(tick)
    })
    expect(e.engine.stats().listeners[0]?.connections).toBe(BURST)
    // libuv alone: one connection per turn, BURST turns. Batched: each
    // turn's poll phase takes 1 + MAX_PER_EVENT (2 turns for 300 at 256;
    // 5 at 64 a batch), and the first tick may come before the first poll.
    expect(turns).toBeLessThanOrEqual(Math.ceil(BURST / (MAX_PER_EVENT + 1)) + 1)
    expect(acceptStats().extra - extraBefore).toBeGreaterThan(BURST / 2)
    expect(await within(exited, 20_000, 'the burst client')).toBe(0)
    expect(out.trim()).toBe(String(BURST))
  })

  it('each address is one listening socket, closed when the address is removed', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const route = { routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }
    const hosts = Array.from({ length: 20 }, (_, i) => `127.0.77.${i + 1}`)
    const e = await startEngine(
      snapshotWith(
        hosts.map((host) => ({ host, ...route })),
        1,
      ),
    )
    cleanups.push(() => e.stop())
    expect(listeningOn('127.0.77.')).toBe(20)
    await e.engine.apply(snapshotWith([{ host: hosts[0] as string, ...route }], 2))
    await until(() => listeningOn('127.0.77.') === 1, 5000, 'the removed listeners to close')
  })
})

/** Listening TCP sockets (IPv4, any process) whose local address starts with `prefix`. */
function listeningOn(prefix: string): number {
  let n = 0
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[3] !== '0A') continue
    const hex = (f[1] ?? '').split(':')[0] ?? ''
    const ip = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.')
    if (ip.startsWith(prefix)) n++
  }
  return n
}
