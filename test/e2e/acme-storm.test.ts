// No order storm: six balancer instances started at once on one etcd, all
// wanting the same certificate from a CA that is down. One instance at a
// time holds the order's lease, and the backoff after each failure is kept
// in the store, so the CA sees one attempt per backoff step, not ten; every
// instance shows the same next attempt.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePorts } from '../support/services/ports.ts'
import { startEtcd } from '../support/services/etcd.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { startBalancer, until } from './harness.ts'
import type { Running } from './harness.ts'

/** Instances started at once (each a Node process: more only slows the suite; the lease and the shared backoff do not depend on the count). */
const N = 6
let etcd: Etcd
const bals: Running[] = []

async function view(bal: Running, name: string): Promise<any> {
  const res = await fetch(`${bal.api}/cert`)
  return ((await res.json()) as Array<{ name: string }>).find((c) => c.name === name)
}

beforeAll(async () => {
  etcd = await startEtcd()
}, 60_000)

afterAll(async () => {
  await Promise.all(bals.map((b) => b.stop()))
  await etcd?.close()
})

describe('instances started at once, one certificate, a CA that is down', () => {
  it('try one at a time, with one shared backoff', async () => {
    // Nothing listens on the CA's port.
    const [caPort, tls] = (await freePorts(2)) as [number, number]
    const store = `etcd://${etcd.endpoint}/storm`
    // The first writes the configuration; the others start with it there.
    const first = await startBalancer(['--store', store, '--acme-directory', `https://127.0.0.1:${caPort}/dir`, '--acme-retry', '1s'])
    bals.push(first)
    const put = await fetch(`${first.api}/server`, {
      method: 'POST',
      body: JSON.stringify({ address: `127.0.0.1:${tls}`, tls: { Acme: { Hosts: ['storm.test'] } } }),
      headers: { 'content-type': 'application/json' },
    })
    expect(put.status).toBe(201)
    bals.push(
      ...(await Promise.all(
        Array.from({ length: N - 1 }, () => startBalancer(['--store', store, '--acme-directory', `https://127.0.0.1:${caPort}/dir`, '--acme-retry', '1s'], {}, { startMs: 90_000 })),
      )),
    )
    const failed = (): Array<Record<string, unknown>> =>
      bals.flatMap((b) => b.logs.filter((l) => l.msg === 'ACME order failed; retrying later')).sort((a, b) => Date.parse(String(a.time)) - Date.parse(String(b.time)))
    // Steps of 1, 2, 4 s (each 50-100% jittered): one attempt per step, whichever instance makes it.
    await until(() => failed().length >= 3, 60_000, 'three failed attempts')
    const attempts = failed()
    // No two instances ever tried from the same state: the failure counts run 1, 2, 3, ...
    expect(attempts.map((l) => l.failures)).toEqual(attempts.map((_, i) => i + 1))
    // And none started before the time the previous one set (its start and that time, from the
    // log lines' own fields: the lines' timestamps also carry the store write's latency).
    for (let i = 1; i < attempts.length; i++) {
      expect(Number(attempts[i]?.startedAt)).toBeGreaterThanOrEqual(Number(attempts[i - 1]?.nextAttempt))
      expect(Number(attempts[i - 1]?.nextAttempt) - Number(attempts[i - 1]?.startedAt)).toBeGreaterThanOrEqual(Number(attempts[i - 1]?.retryInMs))
    }
    // Every instance, asked, shows the shared backoff (read from the store), not one of its own.
    await until(
      async () => (await Promise.all(bals.map((b) => view(b, 'storm.test')))).every((v) => v?.acme?.failures >= 2 && typeof v.acme.lastError === 'string'),
      60_000,
      'the shared backoff on every instance',
    )
  }, 150_000)
})
