// ACME when the CA misbehaves: Pebble refusing most nonces as bad (acme-client
// retries them, our backoff covers what it gives up on) still ends with a
// certificate; a CA that is down is retried with growing, jittered waits,
// shown in GET /cert, and the certificate comes once the CA is back.

import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePorts } from '../support/services/ports.ts'
import { startPebble } from '../support/services/pebble.ts'
import type { Pebble } from '../support/services/pebble.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let up: HttpUpstream
const running: Array<{ stop(): Promise<unknown> }> = []

async function api(bal: Running, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

async function view(bal: Running, name: string): Promise<any> {
  return (await api(bal, 'GET', '/cert')).json.find((c: { name: string }) => c.name === name)
}

beforeAll(async () => {
  up = await httpUpstream()
})
afterAll(async () => {
  for (const r of running.reverse()) await r.stop()
  await up?.close()
})

async function setUp(pebble: Pebble, plain: number, tls: number, host: string): Promise<Running> {
  const bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--acme-directory', pebble.directory, '--acme-ca', pebble.listenerCaFile, '--acme-retry', '500ms'])
  running.push(bal)
  const to = [{ Target: '127.0.0.1', Port: up.port }]
  expect((await api(bal, 'POST', '/server', { address: `:${plain}`, upstreams: to })).status).toBe(201)
  expect((await api(bal, 'POST', '/server', { address: `:${tls}`, tls: { Acme: { Hosts: [host] } }, upstreams: to })).status).toBe(201)
  return bal
}

describe('ACME when the CA misbehaves', () => {
  it('gets its certificate from a CA that refuses most nonces', async () => {
    const [plain, tls] = (await freePorts(2)) as [number, number]
    const pebble = await startPebble({ httpPort: plain, tlsPort: tls, nonceReject: 60 })
    running.push({ stop: () => pebble.close() })
    const bal = await setUp(pebble, plain, tls, 'nonce.test')
    await until(async () => (await view(bal, 'nonce.test'))?.acme?.phase === 'valid', 90_000, 'the certificate despite bad nonces')
  }, 120_000)

  it('retries a CA that is down with growing jittered waits, shown in GET /cert, and gets the certificate once it is up', async () => {
    const [plain, tls, caPort] = (await freePorts(3)) as [number, number, number]
    // The CA's port is known, nothing listens there yet.
    const pebble = await startPebble({ httpPort: plain, tlsPort: tls, port: caPort })
    running.push({ stop: () => pebble.close() })
    await pebble.stop()
    const bal = await setUp(pebble, plain, tls, 'down.test')
    await until(() => bal.logs.filter((l) => l.msg === 'ACME order failed; retrying later' && l.cert === 'down.test').length >= 3, 30_000, 'three failed attempts')
    const fails = bal.logs.filter((l) => l.msg === 'ACME order failed; retrying later' && l.cert === 'down.test')
    expect(fails.map((l) => l.failures)).toEqual([1, 2, 3])
    // 500ms, 1s, 2s steps, each waited for 50-100% of: never sooner, never longer.
    fails.forEach((l, i) => {
      const step = 500 * 2 ** i
      expect(l.retryInMs).toBeGreaterThanOrEqual(step / 2)
      expect(l.retryInMs).toBeLessThanOrEqual(step)
    })
    const v = await view(bal, 'down.test')
    expect(v.acme.phase).toBe('waiting')
    expect(v.acme.failures).toBeGreaterThanOrEqual(3)
    expect(v.acme.lastError).toMatch(/ECONNREFUSED|connect/i)
    await pebble.start()
    await until(async () => (await view(bal, 'down.test'))?.acme?.phase === 'valid', 90_000, 'the certificate once the CA is back')
    expect((await view(bal, 'down.test')).acme).toMatchObject({ failures: 0, lastError: null })
  }, 150_000)
})
