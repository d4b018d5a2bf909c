// Two balancer processes sharing one store (a real etcd, a real ZooKeeper,
// and the Consul stand-in): writes through one instance and edits made
// directly in the store reach both; stale ETags are refused; the store going
// away (stopped, frozen) never stops traffic; a restarted instance comes back
// with everything. Both instances bind the same proxy port (SO_REUSEPORT).

import { request } from 'node:http'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { Etcd3 } from 'etcd3'
import { createClient } from 'node-zookeeper-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConsulStandIn } from '../support/consul-standin.ts'
import { startEtcd } from '../support/services/etcd.ts'
import { startZooKeeper } from '../support/services/zookeeper.ts'
import { freePort, startBalancer, until } from './harness.ts'
import type { Running } from './harness.ts'

interface StoreFixture {
  url: string
  /** Writes a server's key directly in the store (not through a balancer). */
  put(address: string, value: string): Promise<void>
  stop(): Promise<void>
  start(): Promise<void>
  freeze(): void
  resume(): void
  close(): Promise<void>
}

const key = (address: string): string => `servers/${encodeURIComponent(address)}`

const fixtures: Array<[string, () => Promise<StoreFixture>]> = [
  [
    'etcd',
    async () => {
      const etcd = await startEtcd()
      const raw = new Etcd3({ hosts: etcd.endpoint })
      return {
        url: `etcd://${etcd.endpoint}/cluster`,
        put: async (a, v) => void (await raw.put(`/cluster/${key(a)}`).value(v)),
        stop: () => etcd.stop(),
        start: () => etcd.proc.start(),
        freeze: () => etcd.freeze(),
        resume: () => etcd.resume(),
        close: async () => {
          raw.close()
          await etcd.close()
        },
      }
    },
  ],
  [
    'zookeeper',
    async () => {
      const zk = await startZooKeeper({ tickTime: 500 })
      return {
        url: `zk://${zk.endpoint}/cluster`,
        put: (a, v) =>
          new Promise((resolve, reject) => {
            const c = createClient(zk.endpoint)
            c.once('connected', () =>
              c.mkdirp(`/cluster/servers`, (e) => {
                if (e !== null) return reject(e)
                c.setData(`/cluster/${key(a)}`, Buffer.from(v), -1, (err) => {
                  const done = (x: unknown): void => {
                    c.close()
                    if (x === null || x === undefined) resolve()
                    else reject(x as Error)
                  }
                  if (err === null) done(null)
                  else c.create(`/cluster/${key(a)}`, Buffer.from(v), done)
                })
              }),
            )
            c.connect()
          }),
        stop: () => zk.stop(),
        start: () => zk.proc.start(),
        freeze: () => zk.freeze(),
        resume: () => zk.resume(),
        close: () => zk.close(),
      }
    },
  ],
  [
    'consul (stand-in)',
    async () => {
      const consul = new ConsulStandIn()
      await consul.start()
      return {
        url: `consul://127.0.0.1:${consul.port}/cluster`,
        put: async (a, v) => void (await fetch(`${consul.url}/v1/kv/cluster/servers/${encodeURIComponent(encodeURIComponent(a))}`, { method: 'PUT', body: v })),
        stop: () => consul.stop(),
        start: () => consul.start(),
        freeze: () => consul.freeze(),
        resume: () => consul.resume(),
        close: () => consul.close(),
      }
    },
  ],
]

/** One request on a new connection (so the kernel may hand it to either instance). */
function hit(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 2000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

async function api(b: Running, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${b.api}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5000),
  })
  return { status: res.status, etag: res.headers.get('etag'), json: (await res.json().catch(() => null)) as Record<string, unknown> | null }
}

const ENV = { BALANCER_STORE_TIMEOUT: '1s', BALANCER_ZK_SESSION_TIMEOUT: '2s', BALANCER_LOG_LEVEL: 'info' }

describe.each(fixtures)('two balancers on one %s store', (name, makeStore) => {
  let store: StoreFixture
  let upstream: Server
  let upstreamPort = 0
  let port = 0
  let a: Running
  let b: Running
  const address = (): string => `:${port}`

  beforeAll(async () => {
    store = await makeStore()
    upstream = createServer((_req, res) => res.end('up'))
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const ad = upstream.address()
    upstreamPort = typeof ad === 'object' && ad !== null ? ad.port : 0
    port = await freePort()
    ;[a, b] = await Promise.all([startBalancer(['--store', store.url], ENV), startBalancer(['--store', store.url], ENV)])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    upstream?.close()
    await store?.close()
  })

  it('a server created through A is applied by B within a second, and both serve it', async () => {
    const created = await api(a, 'POST', '/server', { address: address(), upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }] })
    expect(created.status).toBe(201)
    const t0 = Date.now()
    await until(async () => (await api(b, 'GET', `/server/${address()}`)).status === 200, 1000, 'B to have the server')
    await until(
      async () => {
        const s = (await api(b, 'GET', '/status')).json as { appliedRevision?: string; store?: { revision?: string } }
        return s.appliedRevision === s.store?.revision
      },
      1000,
      'B to apply it',
    )
    console.log(`[${name}] POST on A -> applied on B: ${Date.now() - t0} ms`)
    for (let i = 0; i < 20; i++) expect(await hit(port)).toEqual({ status: 200, body: 'up' })
  })

  it('an edit made directly in the store reaches both instances', async () => {
    const t0 = Date.now()
    await store.put(':1', JSON.stringify({ upstreams: [{ Target: '127.0.0.1', Port: upstreamPort }] }))
    await until(async () => (await api(a, 'GET', '/server/:1')).status === 200 && (await api(b, 'GET', '/server/:1')).status === 200, 1000, 'the edit on both')
    console.log(`[${name}] direct store edit -> seen by both: ${Date.now() - t0} ms`)
    expect((await api(a, 'DELETE', '/server/:1')).status).toBe(204)
  })

  it('a write through B with an ETag that a write through A made stale is refused with 412', async () => {
    const read = await api(b, 'GET', `/server/${address()}`)
    const body = (w: number) => ({ address: address(), upstreams: [{ Target: '127.0.0.1', Port: upstreamPort, Weight: w }] })
    expect((await api(a, 'PUT', `/server/${address()}`, body(2), { 'if-match': String(read.etag) })).status).toBe(200)
    const stale = await api(b, 'PUT', `/server/${address()}`, body(3), { 'if-match': String(read.etag) })
    expect(stale.status).toBe(412)
    expect(stale.json?.code).toBe('E_PRECONDITION')
    await until(async () => ((await api(b, 'GET', `/server/${address()}`)).json?.upstreams as Array<{ Weight: number }>)?.[0]?.Weight === 2, 1000, "A's write on B")
  })

  it('the store stopped, frozen and restarted never stops traffic and loses no acknowledged write', async () => {
    const logged = b.logs.length
    const t0 = Date.now()
    await store.stop()
    await until(() => b.logs.slice(logged).some((l) => l.level === 50 && String(JSON.stringify(l)).includes('E_STORE_UNAVAILABLE')), 8000, 'B to log the outage')
    console.log(`[${name}] store stop begun -> B logged the outage: ${Date.now() - t0} ms`)
    for (let i = 0; i < 10; i++) expect((await hit(port)).status).toBe(200)
    expect((await api(a, 'POST', '/server', { address: ':2', upstreams: [] })).status).toBe(503)
    await store.start()
    const t1 = Date.now()
    await until(async () => (await api(a, 'POST', '/server', { address: ':2', upstreams: [] })).status === 201, 10_000, 'writes through A again')
    console.log(`[${name}] store back -> first accepted write on A: ${Date.now() - t1} ms`)
    await until(async () => (await api(b, 'GET', '/server/:2')).status === 200, 10_000, 'B to resync').catch((err: Error) => {
      throw new Error(`${err.message}; B logged: ${JSON.stringify(b.logs.slice(logged))}`)
    })
    console.log(`[${name}] store back -> B resynced: ${Date.now() - t1} ms`)

    store.freeze()
    try {
      for (let i = 0; i < 10; i++) expect((await hit(port)).status).toBe(200)
      const t2 = Date.now()
      expect((await api(a, 'DELETE', '/server/:2')).status).toBe(503)
      console.log(`[${name}] frozen store -> write refused after ${Date.now() - t2} ms`)
    } finally {
      store.resume()
    }
    for (let i = 0; i < 10; i++) expect((await hit(port)).status).toBe(200)
  })

  it('a restarted instance comes back with everything', async () => {
    await b.stop()
    for (let i = 0; i < 10; i++) expect((await hit(port)).status).toBe(200)
    b = await startBalancer(['--store', store.url], ENV)
    const [ca, cb] = await Promise.all([api(a, 'GET', '/'), api(b, 'GET', '/')])
    expect(cb.json).toEqual(ca.json)
    expect(((cb.json?.servers ?? []) as Array<{ address: string }>).map((s) => s.address).sort()).toEqual([address(), ':2'].sort())
    // A leaves: B alone serves the port.
    await a.stop()
    await until(async () => (await hit(port).catch(() => ({ status: 0 }))).status === 200, 2000, 'B serving alone')
    for (let i = 0; i < 10; i++) expect((await hit(port)).status).toBe(200)
  })
})
