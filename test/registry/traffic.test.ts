// Service references end to end, under steady keep-alive load, through the
// real balancer process: one route per registry, `{"Service": "web",
// "Registry": ...}` in the config file, instances registered in a real etcd,
// a real ZooKeeper (as Curator writes them) and the Consul stand-in. For each
// registry: an instance registered gets traffic within 1 s; one deregistered
// (and one whose lease expires / whose session ends or whose owner is
// killed with SIGKILL / whose check turns critical) gets none within 1 s
// after, its in-flight requests finishing;
// the registry restarted under load changes nothing; 0 failed requests, as a
// live instance always remains: wrk runs beside the counting load the whole
// time and sees no socket error and no non-2xx answer. Times printed as [measure].
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from '../e2e/harness.ts'
import type { Running } from '../e2e/harness.ts'
import { ConsulStandIn } from '../support/consul-standin.ts'
import { createClient } from 'node-zookeeper-client'
import { CuratorClient, CuratorProcess } from '../support/curator.ts'
import { Load } from '../support/load.ts'
import { Wrk } from '../support/wrk.ts'
import { httpGet } from '../support/client.ts'
import { until } from '../support/poll.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { startEtcd } from '../support/services/etcd.ts'
import type { ZooKeeper } from '../support/services/zookeeper.ts'
import { startZooKeeper } from '../support/services/zookeeper.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

/** An upstream that answers its name and keeps the arrival time (Date.now()) of every request. */
interface Node {
  name: string
  up: HttpUpstream
  arrivals: number[]
}

async function node(name: string): Promise<Node> {
  const arrivals: number[] = []
  const up = await httpUpstream(
    (_req: IncomingMessage, res: ServerResponse) => {
      arrivals.push(Date.now())
      res.end(name)
    },
    { name },
  )
  return { name, up, arrivals }
}

const firstAfter = (n: Node, t: number): number | undefined => n.arrivals.find((a) => a >= t)
const lastOf = (n: Node): number => n.arrivals.at(-1) ?? 0

let consul: ConsulStandIn
let etcd: Etcd
let zk: ZooKeeper
let bal: Running
const ports: Record<'consul' | 'etcd' | 'zk', number> = { consul: 0, etcd: 0, zk: 0 }
const nodes: Node[] = []
const apps: CuratorClient[] = []

beforeAll(async () => {
  consul = new ConsulStandIn()
  await consul.start()
  ;[etcd, zk] = await Promise.all([startEtcd(), startZooKeeper()])
  ports.consul = await freePort()
  ports.etcd = await freePort()
  ports.zk = await freePort()
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')
  const route = (port: number, registry: string) => ({ address: `127.0.0.1:${port}`, upstreams: [{ Service: 'web', Registry: registry }] })
  writeFileSync(cfg, JSON.stringify({ servers: [route(ports.consul, 'consul'), route(ports.etcd, 'etcd'), route(ports.zk, 'apps')] }))
  bal = await startBalancer([
    '--config',
    cfg,
    '--registry',
    `consul://127.0.0.1:${consul.port}`,
    '--registry',
    `etcd://${etcd.endpoint}/services`,
    '--registry',
    `apps=zk://${zk.endpoint}/services`,
    // A registry nothing refers to: its first complete set is empty, and readiness does not wait for more.
    '--registry',
    `idle=etcd://${etcd.endpoint}/idle`,
  ])
}, 60_000)

afterAll(async () => {
  for (const w of running) w.kill()
  await bal?.stop()
  for (const a of apps) a.close()
  await Promise.all(nodes.map((n) => n.up.close()))
  await Promise.all([consul?.close(), etcd?.close(), zk?.close()])
})

async function nodesFor(prefix: string, n: number): Promise<Node[]> {
  const out = await Promise.all(Array.from({ length: n }, (_, i) => node(`${prefix}-${i + 1}`)))
  nodes.push(...out)
  return out
}

const running: Wrk[] = []

/**
 * Waits until the route answers, then starts load on it (the counting load,
 * and wrk beside it); resolves once each of `names` answered under load.
 */
async function loadUntilServed(port: number, names: string[]): Promise<{ load: Load; wrk: Wrk }> {
  await until(async () => (await httpGet(port, '/').catch(() => ({ status: 0 }))).status === 200, 10_000, 'the route to answer')
  const load = new Load(port, { concurrency: 4, gapMs: 2, max: 100_000 })
  const wrk = new Wrk(`http://127.0.0.1:${port}/`, { connections: 4 })
  running.push(wrk)
  await until(() => names.every((n) => load.servedBy(n) > 0), 10_000, `${names.join(', ')} to answer`)
  return { load, wrk }
}

/** wrk's summary once stopped: it ran, and nothing failed. */
async function expectNoWrkFailure(registry: string, wrk: Wrk): Promise<void> {
  const r = await wrk.stop()
  console.log(`[measure] ${registry}: wrk ${r.requests} requests, ${r.socketErrors} socket errors, ${r.non2xx} non-2xx`)
  expect(r.requests, r.out).toBeGreaterThan(100)
  expect([r.socketErrors, r.non2xx], r.out).toEqual([0, 0])
}

function report(registry: string, what: string, ms: number): void {
  console.log(`[measure] ${registry}: ${what} ${ms} ms`)
}

describe('service references under load', () => {
  it('consul: register, deregister, a critical check, a registry restart: 0 failed', async () => {
    const [a, b, c] = (await nodesFor('consul', 3)) as [Node, Node, Node]
    const reg = (n: Node, id: string, checks: Array<Record<string, unknown>> = []) =>
      consul.register({ Node: id, Address: '127.0.0.1', Service: { ID: id, Service: 'web', Port: n.up.port }, Checks: checks })
    reg(a, 'a')
    reg(b, 'b')
    const { load, wrk } = await loadUntilServed(ports.consul, [a.name, b.name])

    const t1 = Date.now()
    reg(c, 'c', [{ CheckID: 'c-http', Name: 'http', Status: 'passing', ServiceID: 'c' }])
    await until(() => firstAfter(c, t1) !== undefined, 5000, 'c to get traffic')
    const first = (firstAfter(c, t1) as number) - t1
    report('consul', 'registered -> first request', first)

    const t2 = Date.now()
    consul.deregister({ Node: 'b', ServiceID: 'b' })
    await load.more(200)
    const last = lastOf(b) - t2
    report('consul', 'deregistered -> last request', last)

    const t3 = Date.now()
    consul.setCheck('c', 'c-http', 'critical', 'c')
    await load.more(200)
    report('consul', 'check critical -> last request', lastOf(c) - t3)
    expect(lastOf(c) - t3).toBeLessThan(1000)

    await consul.stop()
    await load.more(200)
    await consul.start()
    await load.more(200)
    const out = await load.stop()
    await expectNoWrkFailure('consul', wrk)
    expect(load.failures().map((f) => f.error || `${f.status} ${f.body}`)).toEqual([])
    expect(out.length).toBeGreaterThan(800)
    expect(first).toBeLessThan(1000)
    expect(last).toBeLessThan(1000)
  }, 60_000)

  it('etcd: put, delete, a lease expiring, an etcd restart: 0 failed', async () => {
    const [a, b, c] = (await nodesFor('etcd', 3)) as [Node, Node, Node]
    const raw = new Etcd3({ hosts: etcd.endpoint })
    try {
      await raw.put('/services/web/a').value(`127.0.0.1:${a.up.port}`)
      await raw.put('/services/web/b').value(JSON.stringify({ host: '127.0.0.1', port: b.up.port }))
      const { load, wrk } = await loadUntilServed(ports.etcd, [a.name, b.name])

      // A lease nobody keeps alive: etcd expires it after its TTL and deletes
      // the key; the test's own watch sees that moment.
      let expired = 0
      const watcher = await raw.watch().key('/services/web/c').create()
      watcher.on('delete', () => (expired = Date.now()))
      const lease = raw.lease(2, { autoKeepAlive: false })
      const t1 = Date.now()
      await lease.put('/services/web/c').value(`127.0.0.1:${c.up.port}`)
      await until(() => firstAfter(c, t1) !== undefined, 5000, 'c to get traffic')
      const first = (firstAfter(c, t1) as number) - t1
      report('etcd', 'put -> first request', first)

      const t2 = Date.now()
      await raw.delete().key('/services/web/b')
      await load.more(200)
      const last = lastOf(b) - t2
      report('etcd', 'deleted -> last request', last)

      await until(() => expired > 0, 10_000, "c's lease to expire")
      await watcher.cancel()
      await load.more(200)
      report('etcd', 'lease expired (key deleted) -> last request', lastOf(c) - expired)
      expect(lastOf(c) - expired).toBeLessThan(1000)

      await etcd.stop()
      await load.more(200)
      await etcd.proc.start()
      await load.more(200)
      await load.stop()
      await expectNoWrkFailure('etcd', wrk)
      expect(load.failures()).toEqual([])
      expect(load.servedBy(a.name)).toBeGreaterThan(0)
      expect(first).toBeLessThan(1000)
      expect(last).toBeLessThan(1000)
    } finally {
      raw.close()
    }
  }, 90_000)

  it('zookeeper: register, unregister, an ephemeral node whose session is closed or whose owner is killed, a ZooKeeper restart: 0 failed', async () => {
    const [a, b, c, d] = (await nodesFor('zk', 4)) as [Node, Node, Node, Node]
    const app = await CuratorClient.connect(zk.endpoint, '/services')
    apps.push(app)
    await app.register({ name: 'web', id: 'a', address: '127.0.0.1', port: a.up.port, serviceType: 'STATIC' })
    await app.register({ name: 'web', id: 'b', address: '127.0.0.1', port: b.up.port, serviceType: 'STATIC' })
    const { load, wrk } = await loadUntilServed(ports.zk, [a.name, b.name])

    const owner = await CuratorClient.connect(zk.endpoint, '/services')
    const t1 = Date.now()
    await owner.register({ name: 'web', id: 'c', address: '127.0.0.1', port: c.up.port })
    await until(() => firstAfter(c, t1) !== undefined, 5000, 'c to get traffic')
    const first = (firstAfter(c, t1) as number) - t1
    report('zookeeper', 'registered -> first request', first)

    const t2 = Date.now()
    await app.unregister('web', 'b')
    await load.more(200)
    const last = lastOf(b) - t2
    report('zookeeper', 'unregistered -> last request', last)

    const t3 = Date.now()
    owner.close()
    await load.more(200)
    report('zookeeper', 'ephemeral owner session closed -> last request', lastOf(c) - t3)
    expect(lastOf(c) - t3).toBeLessThan(1000)

    // An application killed (SIGKILL) without closing its session: ZooKeeper
    // expires the session after its timeout and deletes the node; the test's
    // own watch times the deletion.
    const killed = await CuratorProcess.register(zk.endpoint, '/services', { name: 'web', id: 'd', address: '127.0.0.1', port: d.up.port })
    const t4 = Date.now()
    await until(() => firstAfter(d, t4) !== undefined, 5000, 'd to get traffic')
    const watch = createClient(zk.endpoint)
    try {
      let deleted: Promise<number> = Promise.resolve(0)
      // Armed (the watch set on the existing node) before the kill.
      await new Promise<void>((armed, reject) => {
        deleted = new Promise<number>((resolve) => {
          watch.once('connected', () =>
            watch.exists(
              '/services/web/d',
              () => resolve(Date.now()),
              (err, stat) => {
                if (err) reject(err)
                else if (!stat) reject(new Error('d is not registered'))
                else armed()
              },
            ),
          )
        })
        watch.connect()
      })
      await killed.kill()
      const gone = await deleted
      await load.more(200)
      report('zookeeper', 'owner killed, session expired (node deleted) -> last request', lastOf(d) - gone)
      expect(lastOf(d) - gone).toBeLessThan(1000)
    } finally {
      watch.close()
    }

    await zk.stop()
    await load.more(200)
    await zk.proc.start()
    await load.more(200)
    await load.stop()
    await expectNoWrkFailure('zookeeper', wrk)
    expect(load.failures()).toEqual([])
    expect(first).toBeLessThan(1000)
    expect(last).toBeLessThan(1000)
  }, 90_000)

  it('a deregistered instance finishes the request it holds: it gets no new ones, the one in flight completes', async () => {
    const port = await freePort()
    const held: ServerResponse[] = []
    const x = await httpUpstream((req: IncomingMessage, res: ServerResponse) => (req.url === '/hold' ? held.push(res) : res.end('x')), { name: 'x' })
    const [y] = (await nodesFor('drain', 1)) as [Node]
    try {
      const post = await fetch(`${bal.api}/server`, { method: 'POST', body: JSON.stringify({ address: `127.0.0.1:${port}`, upstreams: [{ Service: 'drain', Registry: 'consul' }] }) })
      expect(post.status).toBe(201)
      consul.register({ Node: 'dx', Address: '127.0.0.1', Service: { ID: 'dx', Service: 'drain', Port: x.port } })
      consul.register({ Node: 'dy', Address: '127.0.0.1', Service: { ID: 'dy', Service: 'drain', Port: y.up.port } })
      await until(async () => (await httpGet(port, '/').catch(() => ({ text: '' }))).text === 'x', 5000, 'x to get traffic')
      // y answers /hold at once; x holds it: send until x holds one.
      const pending: Array<Promise<{ status: number; text: string }>> = []
      await until(
        () => {
          if (held.length === 0) pending.push(httpGet(port, '/hold'))
          return held.length > 0
        },
        5000,
        'x to hold a request',
      )
      consul.deregister({ Node: 'dx' })
      await until(
        async () => {
          const r = await Promise.all(Array.from({ length: 4 }, () => httpGet(port, '/')))
          return r.every((a) => a.text === 'drain-1')
        },
        5000,
        'x to get no new requests',
      )
      for (const r of held) r.end('x held')
      const done = await Promise.all(pending)
      expect(done.map((r) => `${r.status} ${r.text}`)).toContain('200 x held')
      expect(done.every((r) => r.status === 200)).toBe(true)
    } finally {
      for (const r of held) if (!r.writableEnded) r.end()
      consul.deregister({ Node: 'dy' })
      await fetch(`${bal.api}/server/127.0.0.1:${port}`, { method: 'DELETE' })
      await x.close()
    }
  })

  it('GET shows the reference as written and each instance it resolves to with its registry as origin; a GET put back keeps the reference', async () => {
    const address = `127.0.0.1:${ports.etcd}`
    const served = (await (await fetch(`${bal.api}/server/${address}`)).json()) as { upstreams: Array<Record<string, unknown>> }
    const [ref, ...instances] = served.upstreams
    expect(ref).toEqual({ Service: 'web', Registry: 'etcd', Tags: [], Priority: 1, Weight: 1 })
    expect(instances.length).toBeGreaterThan(0)
    for (const i of instances) expect(i).toMatchObject({ Target: '127.0.0.1', origin: { source: 'etcd', name: expect.stringMatching(/^web\//) } })
    const stored = (await (await fetch(`${bal.api}/server/${address}?origin=store`)).json()) as { upstreams: unknown[] }
    expect(stored.upstreams).toEqual([ref])
    const put = await fetch(`${bal.api}/server/${address}`, { method: 'PUT', body: JSON.stringify(served) })
    expect(put.status).toBe(200)
    expect(((await (await fetch(`${bal.api}/server/${address}?origin=store`)).json()) as { upstreams: unknown[] }).upstreams).toEqual([ref])
  })

  it('the API stores a reference as written, in canonical form, and refuses a bad one with its path', async () => {
    const port = await freePort()
    const post = await fetch(`${bal.api}/server`, {
      method: 'POST',
      body: JSON.stringify({ address: `127.0.0.1:${port}`, upstreams: [{ service: 'web', registry: 'ETCD', tags: 'a, b', Weight: 3 }] }),
    })
    expect(post.status).toBe(201)
    const got = (await (await fetch(`${bal.api}/server/127.0.0.1:${port}`)).json()) as { upstreams: unknown[] }
    expect(got.upstreams).toEqual([{ Service: 'web', Registry: 'etcd', Tags: ['a', 'b'], Priority: 1, Weight: 3 }])
    const bad = await fetch(`${bal.api}/server`, { method: 'POST', body: JSON.stringify({ address: `127.0.0.1:${await freePort()}`, upstreams: [{ Service: 'web', Target: '10.0.0.1' }] }) })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { problems: unknown[] }).problems).toEqual([
      { path: 'body.upstreams[0]', message: 'an entry is either an address (Target, Port) or a service reference (Service), not both; remove Target' },
    ])
    expect((await fetch(`${bal.api}/server/127.0.0.1:${port}`, { method: 'DELETE' })).status).toBe(204)
  })

  it("GET /ready answers 200 once every registry's first complete set is served (the idle one: empty)", async () => {
    await until(async () => (await fetch(`${bal.api}/ready`)).status === 200, 20_000, 'GET /ready to answer 200')
  })

  it('GET /status shows every registry, connected, with its followed services', async () => {
    const res = await fetch(`${bal.api}/status`)
    const body = (await res.json()) as { discovery: { registries: Array<{ name: string; state: string; services: Record<string, number> }> } }
    await until(
      async () => {
        const r = (await (await fetch(`${bal.api}/status`)).json()) as typeof body
        return r.discovery.registries.every((x) => x.state === 'connected')
      },
      20_000,
      'every registry connected',
    )
    expect(body.discovery.registries.map((r) => [r.name, Object.keys(r.services)])).toEqual([
      ['consul', ['web']],
      ['etcd', ['web']],
      ['apps', ['web']],
      ['idle', []],
    ])
  })
})
