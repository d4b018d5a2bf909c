// A write whose new address this instance cannot listen on is refused with
// 409 E_CANNOT_LISTEN and nothing stored; ?force=true stores it, the refusal
// shows in GET /status and the metrics, and the balancer binds the address
// by itself once the port is free. Real sockets: the port is held by another
// process.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
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

/** Another process listening on host:port until killed; resolves once it listens. */
async function holder(port: number, host = '127.0.0.1'): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${port}, ${JSON.stringify(host)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  cleanups.push(() => void child.kill())
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`the holder exited (${code})`)))
  })
  return child
}

interface Status {
  lastError: { code: string; message: string; problems: Array<{ path: string; message: string }> } | null
  engine: { listeners: Array<{ key: string }>; descriptors: { limit: number; open: number; reserve: number } }
}

async function status(b: Running): Promise<Status> {
  return (await (await fetch(`${b.api}/status`)).json()) as Status
}

function post(b: Running, body: unknown, query = ''): Promise<Response> {
  return fetch(`${b.api}/server${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

describe('writes that cannot be listened on', () => {
  it('an address another process holds: 409 and nothing stored; ?force=true stores it, /status and /metrics report it, and it is bound once the port frees', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const dir = tempDir()
    const file = join(dir, 'b.json')
    const b = await startBalancer(['--config', file])
    cleanups.push(() => b.stop())
    const port = await freePort()
    const other = await holder(port)
    const server = { address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] }

    const refused = await post(b, server)
    expect(refused.status).toBe(409)
    const body = (await refused.json()) as { code: string; message: string; problems: Array<{ path: string; message: string }> }
    expect(body.code).toBe('E_CANNOT_LISTEN')
    expect(body.message).toContain(`127.0.0.1:${port}`)
    expect(body.problems).toEqual([{ path: 'servers[0].address', message: `127.0.0.1:${port}: in use by another process (EADDRINUSE)` }])
    expect((await fetch(`${b.api}/server/${encodeURIComponent(`127.0.0.1:${port}`)}`)).status).toBe(404)
    let stored = ''
    try {
      stored = readFileSync(file, 'utf8')
    } catch {
      // never written: nothing stored
    }
    expect(stored).not.toContain(`:${port}`)

    const forced = await post(b, server, '?force=true')
    expect(forced.status).toBe(201)
    expect(readFileSync(file, 'utf8')).toContain(`127.0.0.1:${port}`)
    const st = await status(b)
    expect(st.lastError?.code).toBe('E_LISTEN')
    expect(st.lastError?.message).toContain(`127.0.0.1:${port}`)
    expect(st.engine.listeners.map((l) => l.key)).not.toContain(`127.0.0.1:${port}`)
    expect(await (await fetch(`${b.api}/metrics`)).text()).toMatch(/^balancer_config_refused 1$/m)

    other.kill()
    await until(async () => (await status(b)).engine.listeners.some((l) => l.key === `127.0.0.1:${port}`), 20_000, 'the freed port to be bound')
    expect((await httpGet(port, '/')).text).toBe('a')
    expect((await status(b)).lastError).toBeNull()
    expect(await (await fetch(`${b.api}/metrics`)).text()).toMatch(/^balancer_config_refused 0$/m)
  }, 60_000)

  it('a change through the store watch that cannot be applied keeps the last good configuration, is reported, and applies once the port frees', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const [kept, held] = [await freePort(), await freePort()]
    const file = join(tempDir(), 'b.json')
    const server = (port: number): object => ({ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })
    writeFileSync(file, JSON.stringify([server(kept)]))
    const b = await startBalancer(['--config', file])
    cleanups.push(() => b.stop())
    const other = await holder(held)
    writeFileSync(file, JSON.stringify([server(kept), server(held)]))
    await until(async () => (await status(b)).lastError !== null, 10_000, 'the change to be refused')
    const st = await status(b)
    expect(st.lastError?.code).toBe('E_LISTEN')
    expect(st.lastError?.message).toContain(`127.0.0.1:${held}`)
    expect((await httpGet(kept, '/')).text).toBe('a')
    other.kill()
    await until(async () => (await status(b)).engine.listeners.some((l) => l.key === `127.0.0.1:${held}`), 20_000, 'the freed port to be bound')
    expect((await httpGet(held, '/')).text).toBe('a')
    expect((await status(b)).lastError).toBeNull()
  }, 60_000)

  it('an address not on this host and a bad force value are refused with the reason', async () => {
    const b = await startBalancer(['--config', join(tempDir(), 'b.json')])
    cleanups.push(() => b.stop())
    const server = { address: '192.0.2.1:8080', upstreams: [{ Target: '127.0.0.1', Port: 9 }] }
    const r = await post(b, server)
    expect(r.status).toBe(409)
    const body = (await r.json()) as { code: string; problems: Array<{ message: string }> }
    expect(body.code).toBe('E_CANNOT_LISTEN')
    expect(body.problems[0]?.message).toBe('192.0.2.1:8080: not an address of this host (EADDRNOTAVAIL)')
    const bad = await post(b, server, '?force=yes')
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { problems: Array<{ path: string }> }).problems[0]?.path).toBe('query.force')
  }, 30_000)

  it('with ulimit -n 512: 100 addresses serve, the write that would eat the reserve is refused with 409, clients are still served', async () => {
    const up = await httpUpstream(undefined, { name: 'a' })
    cleanups.push(() => up.close())
    const port = await freePort()
    const addrs = Array.from({ length: 120 }, (_, i) => `127.93.0.${i + 1}:${port}`)
    const file = join(tempDir(), 'b.json')
    writeFileSync(file, JSON.stringify(addrs.slice(0, 100).map((address) => ({ address, upstreams: [{ Target: '127.0.0.1', Port: up.port }] }))))
    // A first start tells how many descriptors 100 addresses leave; the
    // second keeps all but 6 of them in reserve, so one of the next few new
    // addresses would eat into it.
    const first = await startBalancer(['--config', file], {}, { nofile: 512 })
    const { limit, open } = (await status(first)).engine.descriptors
    await first.stop()
    const reserve = limit - open - 6
    const b = await startBalancer(['--config', file, '--fd-reserve', String(reserve)], {}, { nofile: 512 })
    cleanups.push(() => b.stop())
    expect((await status(b)).engine.listeners).toHaveLength(100)
    const add = (address: string | undefined): Promise<Response> => post(b, { address, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })
    let i = 100
    let refused: Response | null = null
    for (; i < addrs.length && refused === null; i++) {
      const r = await add(addrs[i])
      if (r.status !== 201) refused = r
    }
    // Some are accepted, then one is refused: within a few descriptors of the
    // estimate (the second start holds a few more: the API's own sockets come and go).
    expect(i - 100).toBeGreaterThanOrEqual(2)
    expect(i - 100).toBeLessThanOrEqual(12)
    expect(refused?.status).toBe(409)
    const body = (await (refused as Response).json()) as { code: string; message: string }
    expect(body.code).toBe('E_CANNOT_LISTEN')
    expect(body.message).toContain(`cannot listen on ${addrs[i - 1] as string}: no descriptors left`)
    expect(body.message).toContain(`below the reserve of ${reserve}`)
    expect(readFileSync(file, 'utf8')).not.toContain(`"${addrs[i - 1] as string}"`)
    const [host, p] = (addrs[0] as string).split(':')
    expect((await httpGet(Number(p), '/', {}, { host: host as string })).text).toBe('a')
  }, 120_000)
})
