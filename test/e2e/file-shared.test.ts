// Two real balancer processes on one configuration file: servers created
// at the same moment through both APIs all land (each write holds flock on
// `<config>.lock`, re-reads what the other wrote and applies on top of it),
// both instances come to serve them all, and the file holds them all.
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

const PER = 15

async function create(b: Running, address: string): Promise<number> {
  const res = await fetch(`${b.api}/server`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ address, upstreams: [{ Target: '127.0.0.1', Port: 9 }] }),
    signal: AbortSignal.timeout(30_000),
  })
  await res.arrayBuffer()
  return res.status
}

async function served(b: Running): Promise<string[]> {
  const res = await fetch(`${b.api}/`, { signal: AbortSignal.timeout(10_000) })
  const body = (await res.json()) as { servers: Array<{ address: string }> }
  return body.servers.map((s) => s.address).sort()
}

describe('two balancers on one file', () => {
  it('lose none of the servers created through both APIs at the same moment', async () => {
    const dir = tempDir()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const cfg = join(dir, 'balancer.json')
    writeFileSync(cfg, '{ "servers": [] }\n')
    const [a, b] = await Promise.all([startBalancer(['--config', cfg]), startBalancer(['--config', cfg])])
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
    )
    const ports = await Promise.all(Array.from({ length: 2 * PER }, () => freePort()))
    const addresses = ports.map((p) => `127.0.0.1:${p}`)
    const statuses = await Promise.all(addresses.map((addr, i) => create(i % 2 === 0 ? a : b, addr)))
    expect(statuses).toEqual(addresses.map(() => 201))
    const all = [...addresses].sort()
    const stored = (): string[] => (JSON.parse(readFileSync(cfg, 'utf8')) as { servers: Array<{ address: string }> }).servers.map((s) => s.address).sort()
    expect(stored()).toEqual(all)
    // Each instance watches the file and comes to hold every server.
    await until(async () => (await served(a)).length === all.length && (await served(b)).length === all.length, 20_000, 'both instances to hold every server')
    expect(await served(a)).toEqual(all)
    expect(await served(b)).toEqual(all)
    expect(statSync(`${cfg}.lock`).mode & 0o777).toBe(0o600)
    // With node:ffi there, nothing says writes go unserialized.
    expect([...a.logs, ...b.logs].filter((l) => String(l.msg).includes('not serialized'))).toEqual([])
  })
})
