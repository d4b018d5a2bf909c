// etcd as a service registry (the registrator layout) against a real etcd
// (Debian's etcd-server) started for this file; instances written with
// etcdctl, as registrator or a deploy script would.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Etcd } from '../support/services/etcd.ts'
import { startEtcd } from '../support/services/etcd.ts'
import { until } from '../support/poll.ts'
import { openRegistry } from '../../src/sources/registry-open.ts'
import { parseRegistryUrl } from '../../src/kv/registry-url.ts'
import type { RegistryUrl } from '../../src/kv/registry-url.ts'
import { instanceOf } from '../../src/sources/etcd/translate.ts'
import type { Recorded } from './harness.ts'
import { record } from './harness.ts'

let etcd: Etcd
const running: Recorded[] = []

beforeAll(async () => {
  etcd = await startEtcd()
})
afterAll(async () => {
  await etcd?.close()
})
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()))
})

function start(prefix: string, services: string[]): Recorded {
  const source = openRegistry(parseRegistryUrl(`etcd://${etcd.endpoint}${prefix}`) as RegistryUrl, {}, { timeoutMs: 2000 })
  source.follow(services)
  const r = record(source)
  running.push(r)
  return r
}

describe('etcd registry: <prefix>/<service>/<instance-id>', () => {
  it('reads host:port and JSON {host, port, meta} values, and follows puts and deletes', async () => {
    await etcd.ctl('put', '/reg1/web/web-1', '127.0.0.11:8081')
    await etcd.ctl('put', '/reg1/web/web-2', JSON.stringify({ host: '127.0.0.12', port: 8082, meta: { 'balancer.weight': '3', zone: 'a' } }))
    await etcd.ctl('put', '/reg1/other/x', '127.0.0.99:1')
    const r = start('/reg1', ['web'])
    await r.waitFor('web', ['127.0.0.11:8081', '127.0.0.12:8082'])
    expect(r.instances('web')?.find((i) => i.id === 'web-2')).toEqual({ id: 'web-2', Target: '127.0.0.12', Port: 8082, tags: [], meta: { 'balancer.weight': '3', zone: 'a' } })
    await etcd.ctl('put', '/reg1/web/web-3', '[::1]:8083')
    await r.waitFor('web', ['127.0.0.11:8081', '127.0.0.12:8082', '::1:8083'])
    await etcd.ctl('del', '/reg1/web/web-1')
    await r.waitFor('web', ['127.0.0.12:8082', '::1:8083'])
    // A changed value moves the instance.
    await etcd.ctl('put', '/reg1/web/web-2', '127.0.0.12:9082')
    await r.waitFor('web', ['127.0.0.12:9082', '::1:8083'])
  })

  it('the first publish is the first complete set: every followed service read once; with nothing to follow, an empty set', async () => {
    await etcd.ctl('put', '/reg5/a/1', '127.0.0.51:8001')
    await etcd.ctl('put', '/reg5/b/1', '127.0.0.52:8002')
    const r = start('/reg5', ['a', 'b'])
    await until(() => r.publishes.length > 0, 5000, 'a first publish')
    expect(Object.keys(r.publishes[0]?.detail.services ?? {}).sort()).toEqual(['a', 'b'])
    const idle = start('/reg5', [])
    await until(() => idle.publishes.length > 0, 5000, 'a first publish with nothing to follow')
    expect(idle.publishes[0]?.detail.services).toEqual({})
  })

  it('an instance written with a lease disappears when the lease expires', async () => {
    await etcd.ctl('put', '/reg2/api/keep', '127.0.0.21:9001')
    const r = start('/reg2', ['api'])
    await r.waitFor('api', ['127.0.0.21:9001'])
    const grant = await etcd.ctl('lease', 'grant', '2')
    const lease = /lease ([0-9a-f]+) granted/.exec(grant)?.[1]
    expect(lease).toBeDefined()
    await etcd.ctl('put', '--lease', lease as string, '/reg2/api/leased', '127.0.0.22:9002')
    await r.waitFor('api', ['127.0.0.21:9001', '127.0.0.22:9002'])
    const added = performance.now()
    // No keep-alive: etcd expires the lease after its TTL and deletes the key.
    const gone = await r.waitFor('api', ['127.0.0.21:9001'], 10_000)
    expect(gone - added).toBeGreaterThan(1000)
  })

  it('a bad value is left out and reported with its key; the service keeps its good instances', async () => {
    await etcd.ctl('put', '/reg3/db/ok', '127.0.0.31:5432')
    await etcd.ctl('put', '/reg3/db/bad', 'http://127.0.0.32:5432')
    const r = start('/reg3', ['db'])
    await r.waitFor('db', ['127.0.0.31:5432'])
    expect(r.publishes.at(-1)?.detail.problems).toEqual([{ path: 'etcd:db/bad', message: 'value must be host:port or JSON {"host","port","meta"}, got "http://127.0.0.32:5432"; left out' }])
  })

  it('an etcd outage keeps the last known instances; after the restart changes are followed again', async () => {
    await etcd.ctl('put', '/reg4/svc/a', '127.0.0.41:7001')
    const r = start('/reg4', ['svc'])
    await r.waitFor('svc', ['127.0.0.41:7001'])
    await until(() => r.source.health().state === 'connected', 5000, 'connected')
    await etcd.stop()
    await until(() => r.source.health().state === 'unreachable', 10_000, 'unreachable')
    expect(r.addresses('svc')).toEqual(['127.0.0.41:7001'])
    expect(r.reports.filter((e) => e !== null).length).toBe(1)
    await etcd.proc.start()
    await until(() => r.source.health().state === 'connected', 20_000, 'connected again')
    await etcd.ctl('put', '/reg4/svc/b', '127.0.0.42:7002')
    await r.waitFor('svc', ['127.0.0.41:7001', '127.0.0.42:7002'], 10_000)
  })
})

describe('etcd registrator values', () => {
  it('host:port, [v6]:port and JSON with any letter case of its keys', () => {
    expect(instanceOf('etcd', 's', 'i', '10.0.0.1:80')).toEqual({ id: 'i', Target: '10.0.0.1', Port: 80, tags: [], meta: {} })
    expect(instanceOf('etcd', 's', 'i', '[fe80::1]:80')).toMatchObject({ Target: 'fe80::1', Port: 80 })
    expect(instanceOf('etcd', 's', 'i', '{"Host":"h.example","Port":"81","Tags":["v2"]}')).toEqual({ id: 'i', Target: 'h.example', Port: 81, tags: ['v2'], meta: {} })
    expect(instanceOf('etcd', 's', 'i', '{"host":"h","port":70000}')).toEqual({ path: 'etcd:s/i', message: 'port must be an integer 1-65535, got 70000; left out' })
    expect(instanceOf('etcd', 's', 'i', '{"host":')).toMatchObject({ path: 'etcd:s/i', message: expect.stringMatching(/^value is not valid JSON/) })
  })
})
