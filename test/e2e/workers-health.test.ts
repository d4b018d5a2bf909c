// Active health checks with --workers 4, through the real balancer process:
// one worker probes and every worker serves by its results, so an upstream
// sees one probe per interval (not one per worker), and a failing check takes
// the upstream out of every worker's picks, and a passing one brings it back.
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

const INTERVAL_MS = 500

interface Up {
  server: Server
  port: number
  /** Arrival time of every check. */
  probes: number[]
  checkStatus: number
}

async function upstream(): Promise<Up> {
  const up: Up = { server: createServer(), port: 0, probes: [], checkStatus: 200 }
  up.server.on('request', (req, res) => {
    if (req.url === '/healthz') {
      up.probes.push(Date.now())
      res.statusCode = up.checkStatus
      res.end()
      return
    }
    res.end('up')
  })
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

/** One request on a fresh connection: the kernel picks the worker anew each time. */
function get(port: number): Promise<number> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (r) => {
      r.resume()
      r.on('end', () => res(r.statusCode ?? 0))
    })
    req.on('error', rej)
    req.end()
  })
}

/** Statuses of n requests, each on its own connection, 8 at a time (so every worker answers some). */
async function statuses(port: number, n = 40): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i += 8) out.push(...(await Promise.all(Array.from({ length: Math.min(8, n - i) }, () => get(port)))))
  return out
}

describe('active health checks with --workers 4', () => {
  let up: Up
  let port = 0
  let bal: Running

  beforeAll(async () => {
    up = await upstream()
    port = await freePort()
    const cfg = join(tempDir(), 'balancer.json')
    writeFileSync(
      cfg,
      JSON.stringify({
        servers: [
          {
            address: `127.0.0.1:${port}`,
            upstreams: [{ Target: '127.0.0.1', Port: up.port }],
            // Fall 3: one check slower than its timeout on a busy machine does not take the upstream out.
            health: { Path: '/healthz', Interval: `${INTERVAL_MS}ms`, Timeout: `${INTERVAL_MS}ms`, Rise: 1, Fall: 3 },
          },
        ],
      }),
    )
    bal = await startBalancer(['--config', cfg, '--workers', '4'])
    await until(
      async () => ((await (await fetch(`${bal.api}/status`)).json()) as { workers: Array<{ serving: boolean }> }).workers.filter((w) => w.serving).length === 4,
      30_000,
      'four serving workers',
    )
  }, 60_000)

  afterAll(async () => {
    await bal?.stop()
    up?.server.close()
  })

  it('the upstream sees one probe per interval, and every worker serves it once the check passed', async () => {
    await until(() => up.probes.length >= 7, 20_000, 'seven checks')
    const p = up.probes.slice(0, 7)
    const span = (p[6] as number) - (p[0] as number)
    // Six intervals (each at least 90% of Interval, with jitter) between the first and the seventh probe;
    // four workers probing each would pack the seven into about a quarter of that.
    expect(span).toBeGreaterThanOrEqual(6 * INTERVAL_MS * 0.9 - 50)
    expect(await statuses(port)).toEqual(Array.from({ length: 40 }, () => 200))
  })

  it('a failing check takes the upstream out of every worker, and a passing one brings it back into every worker', async () => {
    up.checkStatus = 503
    await until(async () => (await statuses(port)).every((s) => s !== 200), 10_000, 'every worker to stop sending to the failing upstream')
    up.checkStatus = 200
    await until(async () => (await statuses(port)).every((s) => s === 200), 10_000, 'every worker to send to the upstream again')
  })
})
