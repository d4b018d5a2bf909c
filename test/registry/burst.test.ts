// A thousand instances of one service: one etcd watch and one Consul blocking
// query for the service, a burst of registrations coalesced into a few
// publishes and reloads, and the whole set routed. Real etcd; the Consul
// stand-in. Figures printed as [measure].
import { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Etcd } from '../support/services/etcd.ts'
import { startEtcd } from '../support/services/etcd.ts'
import { blockingOn, ConsulStandIn } from '../support/consul-standin.ts'
import { until } from '../support/poll.ts'
import { startRig } from '../sources/rig.ts'
import { freePort } from '../e2e/harness.ts'
import type { Rig } from '../sources/rig.ts'
import { normalizeConfig } from '../../src/model/normalize.ts'
import { isServiceRef } from '../../src/model/types.ts'

const N = 1000
let etcd: Etcd
let consul: ConsulStandIn

beforeAll(async () => {
  etcd = await startEtcd()
  consul = new ConsulStandIn()
  await consul.start()
  port = await freePort()
})
afterAll(async () => {
  await Promise.all([etcd?.close(), consul?.close()])
})

let port = 0
const base = (registry: string) => normalizeConfig({ servers: [{ address: `127.0.0.1:${port}`, upstreams: [{ Service: 'big', Registry: registry }] }] })

function routed(rig: Rig): number {
  return rig.engine.stats().upstreams.length
}

async function burst(rig: Rig, name: string, write: () => Promise<void>): Promise<void> {
  const reloadsBefore = rig.outcomes.length
  const t0 = Date.now()
  await write()
  await until(() => routed(rig) === N, 20_000, `${N} upstreams routed`)
  const reloads = rig.outcomes.length - reloadsBefore
  console.log(`[measure] ${name}: ${N} instances registered in a burst -> all routed ${Date.now() - t0} ms after the first write, ${reloads} reloads`)
  expect(rig.outcomes.every((o) => o.error === null)).toBe(true)
  // Coalesced: nowhere near one reload per instance.
  expect(reloads).toBeLessThan(50)
}

describe('a thousand instances of one service', () => {
  it('etcd: one watch for the service; the burst is a few reloads', async () => {
    const rig = await startRig({ docker: null, swarm: false, dockerResyncMs: 30_000, registries: [`etcd://${etcd.endpoint}/burst`] }, base('etcd'))
    const raw = new Etcd3({ hosts: etcd.endpoint })
    try {
      await until(() => rig.outcomes.length > 0, 5000, 'the first reload')
      await burst(rig, 'etcd', async () => {
        for (let i = 0; i < N; i += 100) {
          await Promise.all(Array.from({ length: 100 }, (_, j) => raw.put(`/burst/big/i-${i + j}`).value(`127.0.${Math.floor((i + j) / 250)}.${((i + j) % 250) + 1}:8080`)))
        }
      })
      // One etcd watch serves the whole service: etcd counts watchers per stream; its metrics say how many.
      const metrics = await (await fetch(`http://${etcd.endpoint}/metrics`)).text()
      const watchers = Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(metrics)?.[1] ?? Number.NaN)
      expect(watchers).toBe(1)
      await raw.delete().prefix('/burst/big/')
      await until(() => routed(rig) === 0, 10_000, 'every instance gone')
    } finally {
      raw.close()
      await rig.stop()
    }
  }, 60_000)

  it('consul: one blocking query for the service; the burst is a few reloads', async () => {
    const rig = await startRig({ docker: null, swarm: false, dockerResyncMs: 30_000, registries: [`consul://127.0.0.1:${consul.port}`] }, base('consul'))
    try {
      await until(() => consul.requests.some((r) => blockingOn(r.url, '/v1/health/service/big', true)), 5000, 'a blocking query')
      const before = consul.requests.length
      await burst(rig, 'consul', async () => {
        for (let i = 0; i < N; i++) {
          consul.register({ Node: `node-${i}`, Address: `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`, Service: { ID: 'big', Service: 'big', Port: 8080 } })
          // Registrations arrive over time, as agents report them, not in one tick.
          if (i % 50 === 49) await new Promise((r) => setImmediate(r))
        }
      })
      const health = consul.requests.slice(before).filter((r) => r.url.startsWith('/v1/health/service/'))
      // Every query is for the one service; none per instance.
      expect(new Set(health.map((r) => r.url.split('?')[0]))).toEqual(new Set(['/v1/health/service/big']))
      console.log(`[measure] consul: ${health.length} health queries for the burst of ${N}`)
    } finally {
      await rig.stop()
    }
  }, 60_000)

  it('the config still holds the reference as written', () => {
    expect(base('etcd').servers[0]?.upstreams.every(isServiceRef)).toBe(true)
  })
})
