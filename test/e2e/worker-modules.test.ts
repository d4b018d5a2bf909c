// What a worker at rest has loaded, asked of the running processes (the
// balancer started through bin/balancer.js with --workers 2 and an empty
// configuration): the engine, and not its parts that only some snapshots
// use (HTTP/2, TLS termination: engine/parts.ts) nor node:zlib (the first
// compressed response takes it). Then a server with h2c arrives, and every
// worker has loaded the HTTP/2 part before the write is answered.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

const HOOK = resolve(import.meta.dirname, '../support/loaded-modules.ts')

interface Loaded {
  /** ES modules, as paths under src/ where they are the balancer's. */
  modules: string[]
  builtins: string[]
}

let bal: Running
let dir: string

async function workerPids(): Promise<number[]> {
  const s = (await (await fetch(`${bal.api}/status`)).json()) as { workers: Array<{ pid: number }> }
  return s.workers.map((w) => w.pid)
}

/** What process `pid` has loaded, by the hook (test/support/loaded-modules.ts). */
async function loaded(pid: number): Promise<Loaded> {
  const file = join(dir, `${pid}.json`)
  rmSync(file, { force: true })
  process.kill(pid, 'SIGUSR2')
  await until(() => existsSync(file), 5000, `worker ${pid} to write what it loaded`)
  const { urls, builtins } = JSON.parse(readFileSync(file, 'utf8')) as { urls: string[]; builtins: string[] }
  const src = new URL('../../src/', import.meta.url).href
  return { modules: urls.filter((u) => u.startsWith(src)).map((u) => u.slice(src.length)), builtins }
}

/** The modules of the parts a plain snapshot does not use. */
const lazy = (m: string): boolean => /^engine\/(h2\/|tls\/(accept|alpn|fallback|part)\.ts$|http1\/(h2c|h2-upstream)\.ts$)/.test(m)
const zlib = (b: string): boolean => b === 'NativeModule zlib' || b === 'Internal Binding zlib'

beforeAll(async () => {
  dir = tempDir()
  bal = await startBalancer(['--config', join(dir, 'b.json'), '--workers', '2'], {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${HOOK}`,
    LOADED_MODULES_DIR: dir,
  })
  await until(async () => (await workerPids()).length === 2, 15_000, 'both workers to serve')
}, 90_000)

afterAll(async () => {
  await bal?.stop()
})

describe('a worker at rest', () => {
  it('has loaded the engine, and neither HTTP/2, TLS termination nor node:zlib', async () => {
    for (const pid of await workerPids()) {
      const l = await loaded(pid)
      expect(l.modules).toEqual(expect.arrayContaining(['workers/worker.ts', 'engine/engine.ts', 'engine/http1/conn.ts']))
      expect(l.modules.filter(lazy)).toEqual([])
      expect(l.builtins.filter(zlib)).toEqual([])
    }
  })

  it('loads the HTTP/2 part with the first server that speaks h2c, before the write is answered', async () => {
    const port = await freePort()
    const res = await fetch(`${bal.api}/server`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: `127.0.0.1:${port}`, Protocols: ['http/1.1', 'h2c'], upstreams: [{ Target: '127.0.0.1', Port: 9 }] }),
    })
    expect(res.status).toBe(201)
    for (const pid of await workerPids()) {
      const l = await loaded(pid)
      expect(l.modules).toEqual(expect.arrayContaining(['engine/h2/part.ts', 'engine/h2/conn.ts', 'engine/http1/h2c.ts']))
      // TLS termination waits for a TLS listener.
      expect(l.modules.filter((m) => m.startsWith('engine/tls/') && /(accept|alpn|fallback|part)\.ts$/.test(m))).toEqual([])
    }
  })
})
