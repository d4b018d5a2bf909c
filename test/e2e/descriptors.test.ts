// Descriptors at scale, on the real balancer process: one listening socket
// per address, a budget that keeps a reserve for clients and upstreams, and
// an accept path that neither spins nor stays stuck when the process runs
// out of descriptors.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { httpGet } from '../support/client.ts'
import { httpUpstream } from '../support/upstream.ts'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

const cleanups: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface Status {
  lastError: { code: string; message: string } | null
  engine: { listeners: Array<{ key: string }>; descriptors: { limit: number; open: number; reserve: number } }
}

async function status(b: Running): Promise<Status> {
  return (await (await fetch(`${b.api}/status`)).json()) as Status
}

/** `count` listen addresses on the loopback block 127.<block>.x.y, `perPort` addresses on each of a few ports from the OS. */
async function addresses(block: number, count: number): Promise<string[]> {
  const out: string[] = []
  const ports: number[] = []
  while (out.length < count) {
    if (out.length % 250 === 0) ports.push(await freePort())
    const i = out.length % 250
    out.push(`127.${block}.${Math.floor(out.length / 250) + 1}.${i + 1}:${ports[ports.length - 1] as number}`)
  }
  return out
}

function configFile(dir: string, addrs: readonly string[], upstreamPort: number): string {
  const file = join(dir, 'b.json')
  writeFileSync(file, JSON.stringify(addrs.map((address) => ({ address, upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }] }))))
  return file
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

describe('descriptors', () => {
  it('1,000 addresses with one worker hold at most 1,100 descriptors at rest', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const addrs = await addresses(91, 1000)
    const b = await startBalancer(['--config', configFile(tempDir(), addrs, up.port)])
    cleanups.push(() => b.stop())
    expect((await status(b)).engine.listeners).toHaveLength(1000)
    const fds = readdirSync(`/proc/${b.proc.pid as number}/fd`).length
    expect(fds).toBeLessThanOrEqual(1100)
    const [host, port] = split(addrs[999])
    expect((await httpGet(port, '/', {}, { host })).text).toBe('a')
  }, 60_000)

  it('with ulimit -n 512: serves 100 addresses, refuses the change that would eat the reserve, and rides out exhaustion', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const dir = tempDir()
    const addrs = await addresses(92, 400)
    const file = configFile(dir, addrs.slice(0, 100), up.port)
    const b = await startBalancer(['--config', file], {}, { nofile: 512 })
    cleanups.push(() => b.stop())
    const st = await status(b)
    expect(st.engine.listeners).toHaveLength(100)
    expect(st.engine.descriptors.limit).toBe(512)
    expect(st.engine.descriptors.reserve).toBe(128)
    const free = st.engine.descriptors.limit - st.engine.descriptors.open - st.engine.descriptors.reserve
    expect(free).toBeGreaterThan(0)
    // One more address than the budget allows, written to the file the balancer watches.
    const over = addrs.slice(0, 100 + free + 1)
    configFile(dir, over, up.port)
    await until(async () => (await status(b)).lastError !== null, 10_000, 'the change to be refused')
    const refused = await status(b)
    expect(refused.lastError?.code).toBe('E_LISTEN')
    expect(refused.lastError?.message).toMatch(/reserve of 128/)
    expect(refused.engine.listeners).toHaveLength(100)
    const [newHost, newPort] = split(over[over.length - 1])
    expect(await connects(newHost, newPort)).toBe(false)
    const [host, port] = split(addrs[0])
    expect((await httpGet(port, '/', {}, { host })).text).toBe('a')

    // Run the process out of descriptors with idle clients: it must not spin,
    // and once they leave it serves again.
    const clients: Socket[] = []
    cleanups.push(() => clients.forEach((c) => c.destroy()))
    for (let i = 0; i < 500; i++) clients.push(connect(port, host).on('error', () => {}))
    await until(() => clients.every((c) => !c.connecting), 10_000, 'the clients to connect or fail')
    const pid = b.proc.pid as number
    const cpu0 = cpuSeconds(pid)
    const t0 = Date.now()
    await until(() => Date.now() - t0 >= 2000, 5000, 'two seconds of exhaustion')
    expect(cpuSeconds(pid) - cpu0).toBeLessThan(0.5)
    for (const c of clients) c.destroy()
    await until(
      async () => {
        try {
          return (await httpGet(port, '/', {}, { host })).text === 'a'
        } catch {
          return false
        }
      },
      10_000,
      'a client to be served again',
    )
  }, 60_000)
})

function split(address: string | undefined): [string, number] {
  const [host, port] = (address ?? '').split(':')
  return [host ?? '', Number(port)]
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
