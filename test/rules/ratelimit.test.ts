// ratelimit end to end in one engine: a token bucket per client address or
// per SourceHeader value, 429 with Retry-After over it, the engine's share
// of a cluster-wide limit, HTTP/2 streams alike, bounded memory.

import http2 from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpGet } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { rulesOf } from './compile-rules.ts'
import { MAX_SOURCES, RateLimiter } from '../../src/engine/rules/ratelimit.ts'
import { normalizeConfig } from '../../src/model/normalize.ts'
import { BalancerError } from '../../src/model/errors.ts'

let up: HttpUpstream
let edge: StartedEngine

beforeAll(async () => {
  up = await httpUpstream(undefined, { name: 'app' })
  const u = [{ host: '127.0.0.1', port: up.port }]
  // A refill of one token a minute: within a test, what passes is the burst alone.
  const route = (pathPrefix: string, groups: Record<string, unknown>): RouteSpec => ({ hosts: [], pathPrefix, upstreams: u, rules: rulesOf(groups, pathPrefix) })
  edge = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            route('/addr', { ratelimit: { Average: 1 / 60, Burst: 3 } }),
            route('/key', { ratelimit: { Average: 1 / 60, Burst: 2, SourceHeader: 'X-Api-Key' } }),
            route('/shared', { ratelimit: { Average: 1 / 60, Burst: 6 } }),
            route('/h2', { ratelimit: { Average: 1 / 60, Burst: 2 } }),
          ],
        },
      ],
      1,
    ),
  )
})
afterAll(async () => {
  await edge?.stop()
  await up?.close()
})

async function statuses(path: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await httpGet(edge.port, path, headers)).status)
  return out
}

describe('ratelimit', () => {
  it('lets Burst requests of a client through, then answers 429 with Retry-After; the upstream never sees those', async () => {
    expect(await statuses('/addr/a', 3)).toEqual([200, 200, 200])
    const over = await httpGet(edge.port, '/addr/over')
    expect(over.status).toBe(429)
    // One token a minute: the next one comes in about 60 s.
    expect(Number(over.headers['retry-after'])).toBeGreaterThanOrEqual(50)
    expect(Number(over.headers['retry-after'])).toBeLessThanOrEqual(60)
    expect(up.requests.some((r) => r.url === '/addr/over')).toBe(false)
  })

  it('with SourceHeader, each value has its own bucket', async () => {
    expect(await statuses('/key/1', 3, { 'x-api-key': 'alice' })).toEqual([200, 200, 429])
    expect(await statuses('/key/2', 3, { 'x-api-key': 'bob' })).toEqual([200, 200, 429])
  })

  it('an engine sharing the limit with others takes its share of the burst', async () => {
    edge.engine.setLimitShare(3)
    try {
      expect(await statuses('/shared/x', 3)).toEqual([200, 200, 429])
    } finally {
      edge.engine.setLimitShare(1)
    }
  })

  it('HTTP/2 streams count in the same buckets', async () => {
    const c = http2.connect(`http://127.0.0.1:${edge.port}`)
    c.on('error', () => {})
    const one = (): Promise<{ status: number; headers: IncomingHttpHeaders }> =>
      new Promise((resolve, reject) => {
        const req = c.request({ ':path': '/h2/x', ':authority': 'a' })
        let head: IncomingHttpHeaders = {}
        req.on('response', (h) => (head = h))
        req.on('data', () => {})
        req.on('end', () => resolve({ status: Number(head[':status']), headers: head }))
        req.on('error', reject)
      })
    try {
      expect((await one()).status).toBe(200)
      expect((await httpGet(edge.port, '/h2/y')).status).toBe(200)
      const over = await one()
      expect(over.status).toBe(429)
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0)
    } finally {
      c.close()
    }
  })

  it(`keeps at most ${MAX_SOURCES} client buckets per route, the least recently used dropped first`, () => {
    const rl = new RateLimiter({ average: 1, burst: 1, sourceHeader: '', signature: 'x' })
    expect(rl.take('first', 0, 1)).toBe(0)
    expect(rl.take('first', 0, 1)).toBe(1)
    for (let i = 0; i < MAX_SOURCES + 100; i++) rl.take(`c${i}`, 0, 1)
    expect(rl.size()).toBe(MAX_SOURCES)
    // 'first' was dropped: it starts again with a full bucket.
    expect(rl.take('first', 0, 1)).toBe(0)
  })

  it('refuses a missing or non-positive Average and a bad SourceHeader, with their paths; labels give numbers as text', () => {
    let problems: string[] = []
    try {
      normalizeConfig({ servers: [{ address: ':8080', upstreams: [], ratelimit: { Burst: 0, SourceHeader: 'Content-Length' }, routes: [{ name: 'r', upstreams: [], ratelimit: { Average: -1 } }] }] })
    } catch (err) {
      if (!(err instanceof BalancerError)) throw err
      problems = err.problems.map((p) => p.path)
    }
    expect(problems.sort()).toEqual(['servers[0].ratelimit.Average', 'servers[0].ratelimit.Burst', 'servers[0].ratelimit.SourceHeader', 'servers[0].routes[0].ratelimit.Average'].sort())
    const ok = normalizeConfig({ servers: [{ address: ':8080', upstreams: [], ratelimit: { Average: '100', Burst: '50' } }] })
    expect(ok.servers[0]?.ratelimit).toEqual({ Average: 100, Burst: 50, SourceHeader: '' })
  })
})
