// A rate limit shared by two balancer processes on one real etcd: each
// counts the live instances by their presence keys in the store and
// enforces its share, so what both let through together stays at the
// configured rate; when one is killed, the other takes the whole rate within
// seconds. Both bind the same proxy port (SO_REUSEPORT): every request goes
// on a new connection, which the kernel hands to either instance.

import { request } from 'node:http'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEtcd } from '../support/services/etcd.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { freePort, startBalancer } from './harness.ts'
import type { Running } from './harness.ts'

const RATE = 20
const BURST = 4
const ENV = { BALANCER_STORE_TIMEOUT: '1s', BALANCER_LOG_LEVEL: 'info' }

let etcd: Etcd
let upstream: Server
let a: Running
let b: Running
let port = 0

beforeAll(async () => {
  etcd = await startEtcd()
  upstream = createServer((_req, res) => res.end('up'))
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const ad = upstream.address()
  const upstreamPort = typeof ad === 'object' && ad !== null ? ad.port : 0
  port = await freePort()
  const url = `etcd://${etcd.endpoint}/rl`
  ;[a, b] = await Promise.all([startBalancer(['--store', url, '--workers', '1'], ENV), startBalancer(['--store', url, '--workers', '1'], ENV)])
  const res = await fetch(`${a.api}/server`, {
    method: 'POST',
    body: JSON.stringify({ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }], ratelimit: { Average: RATE, Burst: BURST } }),
  })
  expect(res.status).toBe(201)
  const two = (l: Record<string, unknown>): boolean => l.msg === 'rate limits shared by the live instances' && l.instances === 2
  await Promise.all([a.waitLog(two, 20_000), b.waitLog(two, 20_000)])
}, 90_000)

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  await new Promise((r) => upstream?.close(r))
  await etcd?.close()
}, 60_000)

/** One request on a new connection; 0 when it failed (a killed instance's connection). */
function hit(): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, retryAfter: undefined }))
    req.end()
  })
}

/** Times (ms) of the requests let through by 6 clients sending back to back for `ms`, and a Retry-After seen. */
async function load(ms: number): Promise<{ ok: number[]; refused: number; retryAfter: string | undefined }> {
  const end = Date.now() + ms
  const ok: number[] = []
  let refused = 0
  let retryAfter: string | undefined
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (Date.now() < end) {
        const r = await hit()
        if (r.status === 200) ok.push(Date.now())
        else if (r.status === 429) {
          refused++
          retryAfter ??= r.retryAfter
        }
      }
    }),
  )
  return { ok, refused, retryAfter }
}

describe('a rate limit shared through etcd', () => {
  it('two instances together let through the configured rate (within 10% over 10 s); after one is killed the other takes all of it within 5 s', async () => {
    const both = await load(10_000)
    const perSecond = both.ok.length / 10
    expect(both.refused).toBeGreaterThan(both.ok.length) // the clients asked for far more than the limit
    expect(both.retryAfter).toBeDefined()
    expect(perSecond).toBeGreaterThanOrEqual(RATE * 0.9)
    expect(perSecond).toBeLessThanOrEqual(RATE * 1.1)

    b.proc.kill('SIGKILL')
    const killedAt = Date.now()
    const alone = await load(8_000)
    // The first one-second window, from the kill on, in which the survivor let through at least 80% of the whole rate.
    const times = alone.ok
    let rebalancedAt = -1
    for (let t = killedAt; t + 1000 <= killedAt + 8000; t += 100) {
      if (times.filter((x) => x >= t && x < t + 1000).length >= RATE * 0.8) {
        rebalancedAt = t + 1000
        break
      }
    }
    expect(rebalancedAt).toBeGreaterThan(0)
    expect(rebalancedAt - killedAt).toBeLessThanOrEqual(5000)
    // And it stays at the rate, not above it: the last 2 s.
    const last = times.filter((x) => x >= killedAt + 6000).length / 2
    expect(last).toBeGreaterThanOrEqual(RATE * 0.8)
    expect(last).toBeLessThanOrEqual(RATE * 1.2)
  }, 60_000)
})
