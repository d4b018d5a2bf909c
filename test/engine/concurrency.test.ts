// Many clients at once: every response belongs to its own request (no
// cross-talk through pooled upstream connections), and the pool obeys
// maxIdlePerUpstream and upstreamIdleMs.

import { createHash, randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { httpRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { EngineTestOptions, StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Echoes `<url> <sha256 of body>` after a short random delay, so answers interleave. */
async function echo(name: string): Promise<HttpUpstream> {
  const up = await httpUpstream(
    (req, res, body) => {
      setTimeout(() => res.end(`${name} ${req.url ?? ''} ${createHash('sha256').update(body).digest('hex')}`), Math.floor(Math.random() * 20))
    },
    { name },
  )
  cleanup.push(() => up.close())
  return up
}

async function engine(ups: HttpUpstream[], opts: EngineTestOptions = {}): Promise<StartedEngine> {
  const e = await startEngine(snapshotFor({ routes: [{ upstreams: ups.map((u) => ({ host: '127.0.0.1', port: u.port })) }] }, 1), opts)
  cleanup.push(() => e.stop())
  return e
}

describe('concurrency', () => {
  it('300 concurrent requests with bodies of 0 to 200 KiB each get their own answer', async () => {
    const ups = [await echo('a'), await echo('b')]
    const e = await engine(ups)
    const results = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const body = randomBytes(i % 7 === 0 ? 0 : Math.floor(Math.random() * 200 * 1024))
        const r = await httpRequest(e.port, `/req-${i}`, { 'content-length': body.length }, { method: 'POST', body, timeoutMs: 20_000 })
        const [who, path, hash] = r.text.split(' ')
        return r.status === 200 && (who === 'a' || who === 'b') && path === `/req-${i}` && hash === createHash('sha256').update(body).digest('hex')
      }),
    )
    expect(results.filter((ok) => !ok)).toHaveLength(0)
    expect(ups.every((u) => u.requests.length > 0)).toBe(true)
  })

  it('keeps at most maxIdlePerUpstream idle connections after a burst', async () => {
    const up = await echo('a')
    const e = await engine([up], { maxIdlePerUpstream: 2 })
    await Promise.all(Array.from({ length: 40 }, (_, i) => httpRequest(e.port, `/b${i}`)))
    await until(() => up.open() <= 2, 3000, 'the pool to shed idle connections beyond 2')
    expect(up.connections).toBeGreaterThan(2)
  })

  it('closes pooled connections idle for upstreamIdleMs', async () => {
    const up = await echo('a')
    const e = await engine([up], { upstreamIdleMs: 200 })
    await Promise.all(Array.from({ length: 5 }, (_, i) => httpRequest(e.port, `/i${i}`)))
    await until(() => up.open() === 0, 3000, 'idle pooled connections to be closed')
    expect((await httpRequest(e.port, '/again')).status).toBe(200)
  })
})
