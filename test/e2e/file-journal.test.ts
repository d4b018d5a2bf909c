// The real balancer on a configuration file past the journal's threshold
// (1 MiB: one server with 2,000 routes): every API write answered 2xx is
// there after SIGKILL and a restart (replayed from `<config>.journal`), and
// a clean stop folds the journal into the file.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from './harness.ts'

const ROUTES = 2000

/** Route r's upstream k: a distinct 10.x.y.z for each (never contacted). */
function target(r: number, k: number): string {
  const g = r * 5 + k
  return `10.${(g >> 16) & 255}.${(g >> 8) & 255}.${g & 255}`
}

function config(port: number): unknown {
  return {
    servers: [
      {
        address: `127.0.0.1:${port}`,
        upstreams: [{ Target: '127.0.0.1', Port: 9 }],
        routes: Array.from({ length: ROUTES }, (_, r) => ({
          name: `r${r}`,
          filter: { Hosts: [`r${r}.example.com`] },
          upstreams: Array.from({ length: 5 }, (_, k) => ({ Target: target(r, k), Port: 8080 })),
        })),
      },
    ],
  }
}

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

interface Stored {
  servers: Array<{ routes: Array<{ upstreams: Array<{ Weight: number }> }> }>
}

describe('file store journal', () => {
  it('keeps every write answered 2xx through SIGKILL right after it, and folds the journal on a clean stop', async () => {
    const dir = tempDir()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const cfg = join(dir, 'balancer.json')
    const port = await freePort()
    writeFileSync(cfg, JSON.stringify(config(port), null, 2))
    expect(statSync(cfg).size).toBeGreaterThan(1024 * 1024)
    const bal = await startBalancer(['--config', cfg])
    cleanup.push(() => bal.stop('SIGKILL'))
    const address = encodeURIComponent(`127.0.0.1:${port}`)
    for (let r = 0; r < 5; r++) {
      const res = await fetch(`${bal.api}/server/${address}/route/r${r}/upstream/${target(r, 0)}-8080`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ Weight: 7 }),
      })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    }
    await bal.stop('SIGKILL')
    expect(existsSync(`${cfg}.journal`)).toBe(true)

    const again = await startBalancer(['--config', cfg])
    cleanup.push(() => again.stop('SIGKILL'))
    const got = (await (await fetch(`${again.api}/`)).json()) as Stored
    const weights = (s: Stored): number[] => s.servers[0]?.routes.slice(0, 6).map((r) => r.upstreams[0]?.Weight ?? 0) ?? []
    expect(weights(got)).toEqual([7, 7, 7, 7, 7, 1])

    expect(await again.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    expect(statSync(`${cfg}.journal`).size).toBe(0)
    expect(weights(JSON.parse(readFileSync(cfg, 'utf8')) as Stored)).toEqual([7, 7, 7, 7, 7, 1])
  })
})
