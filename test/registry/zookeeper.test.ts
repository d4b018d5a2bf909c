// ZooKeeper as a service registry (Apache Curator's layout) against a real
// ZooKeeper (Debian's zookeeper) started for this file; instances written as
// Curator's Java client writes them (test/support/curator.ts).
import { writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from '../e2e/harness.ts'
import { TestCa } from '../support/certs.ts'
import { httpGet } from '../support/client.ts'
import type { ZooKeeper } from '../support/services/zookeeper.ts'
import { startZooKeeper } from '../support/services/zookeeper.ts'
import { CuratorClient, curatorJson } from '../support/curator.ts'
import { until } from '../support/poll.ts'
import { openRegistry } from '../../src/sources/registry-open.ts'
import { parseRegistryUrl } from '../../src/kv/registry-url.ts'
import type { RegistryUrl } from '../../src/kv/registry-url.ts'
import { instanceOf } from '../../src/sources/zookeeper/translate.ts'
import type { Recorded } from './harness.ts'
import { record } from './harness.ts'

let zk: ZooKeeper
const running: Recorded[] = []
const apps: CuratorClient[] = []

beforeAll(async () => {
  zk = await startZooKeeper()
})
afterAll(async () => {
  await zk?.close()
})
afterEach(async () => {
  for (const a of apps.splice(0)) a.close()
  await Promise.all(running.splice(0).map((r) => r.stop()))
})

function start(base: string, services: string[]): Recorded {
  const source = openRegistry(parseRegistryUrl(`zk://${zk.endpoint}${base}`) as RegistryUrl, {}, { timeoutMs: 2000 })
  source.follow(services)
  const r = record(source)
  running.push(r)
  return r
}

async function app(base: string): Promise<CuratorClient> {
  const a = await CuratorClient.connect(zk.endpoint, base)
  apps.push(a)
  return a
}

describe('ZooKeeper registry: Curator service discovery', () => {
  it('reads instances as Curator writes them, payload metadata included; follows registration and removal', async () => {
    const a = await app('/zk1')
    await a.register({
      name: 'web',
      id: 'w1',
      address: '127.0.0.11',
      port: 8081,
      payload: { '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance', id: 'web', name: 'web', metadata: { 'balancer.weight': '3', instance_status: 'UP' } },
    })
    const r = start('/zk1', ['web'])
    await r.waitFor('web', ['127.0.0.11:8081'])
    expect(r.instances('web')?.[0]).toEqual({ id: 'w1', Target: '127.0.0.11', Port: 8081, tags: [], meta: { id: 'web', name: 'web', 'balancer.weight': '3', instance_status: 'UP' } })
    const id = await a.register({ name: 'web', address: '127.0.0.12', port: 8082 })
    await r.waitFor('web', ['127.0.0.11:8081', '127.0.0.12:8082'])
    await a.unregister('web', id)
    await r.waitFor('web', ['127.0.0.11:8081'])
  })

  it('sees nested changes: an instance whose data changes, a service node created after it is followed', async () => {
    const r = start('/zk2', ['late'])
    await r.waitFor('late', [])
    const a = await app('/zk2')
    await a.register({ name: 'late', id: 'l1', address: '127.0.0.21', port: 9001, serviceType: 'STATIC' })
    await r.waitFor('late', ['127.0.0.21:9001'])
    await a.update({ name: 'late', id: 'l1', address: '127.0.0.21', port: 9002, serviceType: 'STATIC' })
    await r.waitFor('late', ['127.0.0.21:9002'])
    // Curator's enabled=false takes an instance out without deleting it.
    await a.update({ name: 'late', id: 'l1', address: '127.0.0.21', port: 9002, serviceType: 'STATIC', enabled: false })
    await r.waitFor('late', [])
    await a.unregister('late', 'l1')
  })

  it("an ephemeral instance leaves when its owner's session ends", async () => {
    const keeper = await app('/zk3')
    await keeper.register({ name: 'api', id: 'stay', address: '127.0.0.31', port: 7001, serviceType: 'STATIC' })
    const owner = await CuratorClient.connect(zk.endpoint, '/zk3')
    await owner.register({ name: 'api', id: 'eph', address: '127.0.0.32', port: 7002 })
    const r = start('/zk3', ['api'])
    await r.waitFor('api', ['127.0.0.31:7001', '127.0.0.32:7002'])
    owner.close()
    await r.waitFor('api', ['127.0.0.31:7001'])
    await keeper.unregister('api', 'stay')
  })

  it('a ZooKeeper restart keeps the last known instances, then everything is read again', async () => {
    const a = await app('/zk4')
    await a.register({ name: 'svc', id: 's1', address: '127.0.0.41', port: 7101, serviceType: 'STATIC' })
    const r = start('/zk4', ['svc'])
    await r.waitFor('svc', ['127.0.0.41:7101'])
    await until(() => r.source.health().state === 'connected', 5000, 'connected')
    await zk.stop()
    await until(() => r.source.health().state === 'unreachable', 10_000, 'unreachable')
    expect(r.addresses('svc')).toEqual(['127.0.0.41:7101'])
    await zk.proc.start()
    await until(() => r.source.health().state === 'connected', 30_000, 'connected again')
    const b = await app('/zk4')
    await b.register({ name: 'svc', id: 's2', address: '127.0.0.42', port: 7102, serviceType: 'STATIC' })
    await r.waitFor('svc', ['127.0.0.41:7101', '127.0.0.42:7102'], 10_000)
  })
})

describe('ZooKeeper registry: instances with an sslPort, through a balancer', () => {
  it('an sslPort-only instance is reached over TLS, verified against --upstream-ca; one with both ports over TLS unless its metadata says http', async () => {
    const ca = new TestCa()
    const leaf = ca.issue(['127.0.0.1'])
    const servers: Array<{ close(): void; closeAllConnections(): void }> = []
    const serve = async (name: string, tls: boolean): Promise<number> => {
      const answer = (req: IncomingMessage, res: ServerResponse): void => {
        req.resume()
        res.end(`${name} ${tls ? 'tls' : 'plain'}`)
      }
      const srv = tls ? createHttpsServer({ cert: leaf.cert, key: leaf.key }, answer) : createHttpServer(answer)
      servers.push(srv)
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
      return (srv.address() as AddressInfo).port
    }
    const dir = tempDir()
    const port = await freePort()
    writeFileSync(join(dir, 'balancer.json'), JSON.stringify({ servers: [{ address: `127.0.0.1:${port}`, upstreams: [{ Service: 'secure', Registry: 'apps' }] }] }))
    const bal = await startBalancer(['--config', join(dir, 'balancer.json'), '--registry', `apps=zk://${zk.endpoint}/ssl`, '--upstream-ca', ca.caFile])
    try {
      const a = await app('/ssl')
      await a.register({ name: 'secure', id: 'only-ssl', address: '127.0.0.1', port: null, sslPort: await serve('only-ssl', true) })
      await a.register({ name: 'secure', id: 'both', address: '127.0.0.1', port: await serve('both', false), sslPort: await serve('both', true) })
      await a.register({
        name: 'secure',
        id: 'plain-wanted',
        address: '127.0.0.1',
        port: await serve('plain-wanted', false),
        sslPort: await serve('plain-wanted', true),
        payload: { '@class': 'java.util.HashMap', metadata: { 'balancer.scheme': 'http' } },
      })
      const seen = new Set<string>()
      await until(
        async () => {
          const r = await httpGet(port, '/').catch(() => null)
          if (r?.status === 200) seen.add(r.body.toString())
          return seen.size >= 3
        },
        15_000,
        'all three instances to answer',
      )
      expect([...seen].sort()).toEqual(['both tls', 'only-ssl tls', 'plain-wanted plain'])
      const view = (await (await fetch(`${bal.api}/server/127.0.0.1:${port}`)).json()) as { upstreams: Array<{ Port?: number; Scheme?: string }> }
      expect(view.upstreams.filter((u) => u.Scheme === 'https')).toHaveLength(2)
      // A certificate the balancer does not trust: the instance is not served (a failed connect), the others are.
      const rogue = new TestCa()
      const bad = rogue.issue(['127.0.0.1'])
      const srv = createHttpsServer({ cert: bad.cert, key: bad.key }, (_req, res) => res.end('rogue tls'))
      servers.push(srv)
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
      await a.register({ name: 'secure', id: 'rogue', address: '127.0.0.1', port: null, sslPort: (srv.address() as AddressInfo).port })
      await until(async () => ((await (await fetch(`${bal.api}/server/127.0.0.1:${port}`)).json()) as { upstreams: unknown[] }).upstreams.length === 5, 5000, 'the rogue instance listed')
      for (let i = 0; i < 20; i++) {
        const r = await httpGet(port, '/')
        expect(r.status).toBe(200)
        expect(r.body.toString()).not.toBe('rogue tls')
      }
      rogue.remove()
    } finally {
      await bal.stop()
      for (const s of servers) {
        s.closeAllConnections()
        s.close()
      }
      ca.remove()
    }
  }, 60_000)
})

describe('Curator ServiceInstance JSON', () => {
  it('port or sslPort may be null; enabled absent means enabled; a string payload carries no metadata; sslPort is TLS', () => {
    const json = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o))
    const base = JSON.parse(curatorJson({ name: 's', id: 'i', address: '10.0.0.1', port: 80 })) as Record<string, unknown>
    expect(instanceOf('zookeeper', 's', 'node', json(base))).toEqual({ id: 'i', Target: '10.0.0.1', Port: 80, tags: [], meta: {} })
    const { enabled: _e, ...old } = base
    expect(instanceOf('zookeeper', 's', 'node', json({ ...old, payload: 'From Test' }))).toMatchObject({ Target: '10.0.0.1', meta: {} })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, enabled: false }))).toBeNull()
    // sslPort: TLS. Both ports: TLS on sslPort (Curator's {scheme} is https then), unless balancer.scheme says http.
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, port: null, sslPort: 8443 }))).toEqual({ id: 'i', Target: '10.0.0.1', Port: 8443, tags: [], meta: {}, Scheme: 'https' })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, sslPort: 8443 }))).toMatchObject({ Port: 8443, Scheme: 'https' })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, sslPort: 8443, payload: { metadata: { 'balancer.scheme': 'http' } } }))).toEqual({
      id: 'i',
      Target: '10.0.0.1',
      Port: 80,
      tags: [],
      meta: { 'balancer.scheme': 'http' },
    })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, payload: { metadata: { 'balancer.scheme': 'https' } } }))).toEqual({
      path: 'zookeeper:s/node',
      message: 'balancer.scheme is "https" but the instance has no sslPort; left out',
    })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, port: null, sslPort: 8443, payload: { metadata: { 'balancer.scheme': 'http' } } }))).toEqual({
      path: 'zookeeper:s/node',
      message: 'balancer.scheme is "http" but the instance has no port, only an sslPort; left out',
    })
    expect(instanceOf('zookeeper', 's', 'node', json({ ...base, port: null, sslPort: 0 }))).toEqual({ path: 'zookeeper:s/node', message: 'port must be an integer 1-65535, got 0; left out' })
    expect(instanceOf('zookeeper', 's', 'node', Buffer.from('not json'))).toMatchObject({ path: 'zookeeper:s/node' })
  })
})
