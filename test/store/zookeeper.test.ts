// ZooKeeperStore against a real ZooKeeper (Debian's zookeeper) started for this file.

import { execFileSync } from 'node:child_process'
import { createClient, CreateMode, Exception } from 'node-zookeeper-client'
import type { Client } from 'node-zookeeper-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serverValue } from '../../src/store/kv/layout.ts'
import { ZooKeeperStore } from '../../src/store/zookeeper.ts'
import { ZkSession } from '../../src/kv/zk-session.ts'
import { until } from '../support/poll.ts'
import type { ZooKeeper } from '../support/services/zookeeper.ts'
import { startZooKeeper } from '../support/services/zookeeper.ts'
import { startTcpProxy } from '../support/services/tcp-proxy.ts'
import { kvSuite, Recorder, server, TEST_TIMING } from './kv-suite.ts'
import { sharedSuite } from './shared-suite.ts'
import type { SharedSpace } from '../../src/store/shared.ts'

let zk: ZooKeeper
let raw: Client
const node = (prefix: string, address?: string): string => `${prefix}/servers${address === undefined ? '' : `/${encodeURIComponent(address)}`}`

function connectRaw(): Promise<Client> {
  const c = createClient(zk.endpoint, { sessionTimeout: 4000 })
  c.connect()
  return new Promise((resolve) => c.once('connected', () => resolve(c)))
}

/** setData, or create (with parents) when the node is missing: what zkCli's create/set do by hand. */
function write(c: Client, path: string, value: string): Promise<void> {
  return new Promise((resolve, reject) =>
    c.setData(path, Buffer.from(value), -1, (err) => {
      if (err === null) return resolve()
      if (!(err instanceof Exception) || err.getCode() !== Exception.NO_NODE) return reject(err)
      c.mkdirp(path, Buffer.from(value), CreateMode.PERSISTENT, (e) => (e === null ? resolve() : reject(e)))
    }),
  )
}

beforeAll(async () => {
  zk = await startZooKeeper()
  raw = await connectRaw()
})
afterAll(async () => {
  raw?.close()
  await zk?.close()
})

const open = (prefix: string, port: number, opts = {}) =>
  new ZooKeeperStore({ hosts: [{ host: '127.0.0.1', port }], prefix, location: `zk://127.0.0.1:${port}${prefix}`, sessionTimeoutMs: 1200, ...TEST_TIMING, ...opts })

kvSuite({
  name: 'zookeeper',
  open: (prefix, opts) => open(prefix, zk.port, opts),
  async put(prefix, address, value) {
    // The raw client's session may have been cut by an outage test.
    if (raw.getState().name !== 'SYNC_CONNECTED') {
      raw.close()
      raw = await connectRaw()
    }
    await write(raw, node(prefix, address), value)
  },
  putSync(prefix, address, value) {
    const script = `
      const zk = require('node-zookeeper-client')
      const c = zk.createClient(process.argv[1]); c.connect()
      const done = (e) => { if (e) { console.error(String(e)); process.exit(1) } c.close(); process.exit(0) }
      c.once('connected', () => c.setData(process.argv[2], Buffer.from(process.argv[3]), -1, (e) =>
        e && e.getCode() === zk.Exception.NO_NODE ? c.mkdirp(process.argv[2], Buffer.from(process.argv[3]), done) : done(e)))`
    execFileSync(process.execPath, ['-e', script, zk.endpoint, node(prefix, address), value], { cwd: import.meta.dirname, stdio: 'inherit' })
  },
  async dump(prefix) {
    const c = await connectRaw()
    try {
      const children = await new Promise<string[]>((resolve, reject) =>
        c.getChildren(node(prefix), (err, kids) => (err === null ? resolve(kids) : err instanceof Exception && err.getCode() === Exception.NO_NODE ? resolve([]) : reject(err))),
      )
      const out = new Map<string, string>()
      for (const name of children.sort()) {
        const data = await new Promise<Buffer>((resolve, reject) => c.getData(`${node(prefix)}/${name}`, (err, d) => (err === null ? resolve(d) : reject(err))))
        out.set(decodeURIComponent(name), data.toString('utf8'))
      }
      return out
    } finally {
      c.close()
    }
  },
  stop: () => zk.stop(),
  start: () => zk.proc.start(),
  freeze: () => zk.freeze(),
  resume: () => zk.resume(),
})

describe('zookeeper specifics', () => {
  it('re-arms every watch on a new session after a partition longer than the session timeout', async () => {
    const proxy = await startTcpProxy(zk.port)
    const store = open('/expiry', proxy.port)
    const ac = new AbortController()
    try {
      await write(raw, node('/expiry', ':8201'), serverValue(server(8201)))
      const rec = new Recorder()
      store.watch(ac.signal, rec.handlers)
      await until(() => rec.last()?.config.servers.length === 1, 2000, 'the first read')
      // Partition the store from ZooKeeper for longer than its session timeout: the server expires the
      // session, and the store gives it up too (the library would keep trying it).
      proxy.cut()
      await until(() => rec.errors().length === 1, 3000, 'the partition reported')
      // The session timeout is the input here: the partition must outlast it, and only time can.
      await new Promise((r) => setTimeout(r, 2000))
      await write(raw, node('/expiry', ':8202'), serverValue(server(8202)))
      proxy.restore()
      // A new session reads everything and arms new watches.
      await until(() => rec.last()?.config.servers.length === 2, 5000, 'the resync on a new session')
      expect(store.health().state).toBe('connected')
      const t0 = Date.now()
      await write(raw, node('/expiry', ':8201'), serverValue(server(8201, 9)))
      await until(() => rec.last()?.config.servers[0]?.upstreams[0]?.Weight === 9, 1000, 'a data watch on the new session')
      await write(raw, node('/expiry', ':8203'), serverValue(server(8203)))
      await until(() => rec.last()?.config.servers.length === 3, 1000, 'a child watch on the new session')
      console.log(`[zookeeper] after the partition: setData -> watch ${Date.now() - t0} ms`)
      expect(rec.errors()).toHaveLength(1)
    } finally {
      ac.abort()
      await store.close()
      await proxy.close()
    }
  })
})

describe('zookeeper sessions', () => {
  it('replaces a session the server expired, and says so', async () => {
    const proxy = await startTcpProxy(zk.port)
    const session = new ZkSession({ connect: `127.0.0.1:${proxy.port}`, sessionTimeoutMs: 4000, auth: [] })
    const trouble: string[] = []
    session.onTrouble((err) => trouble.push(err.message))
    try {
      const first = await session.client(2000)
      const id = first.getSessionId()
      // While the client is cut off, its session is closed from another connection (ZooKeeper's
      // way to expire a session on purpose); when it reconnects, the server says "expired".
      proxy.cut()
      await until(() => trouble.includes('connection lost'), 2000, 'the cut')
      await new Promise<void>((resolve) => {
        const twin = createClient(zk.endpoint, { sessionTimeout: 4000, sessionId: id, sessionPassword: first.getSessionPassword() } as never)
        twin.once('connected', () => {
          // Closed once the server has answered the close: the session is gone from then on.
          twin.once('disconnected', () => resolve())
          twin.close()
        })
        twin.connect()
      })
      proxy.restore()
      await until(() => trouble.includes('session expired'), 5000, 'the expiry')
      const second = await session.client(2000)
      expect(second).not.toBe(first)
      expect(second.getSessionId().equals(id)).toBe(false)
    } finally {
      session.close()
      await proxy.close()
    }
  })
})

const zkSpaces = new Map<SharedSpace, ZooKeeperStore>()
sharedSuite({
  name: 'zookeeper',
  open(prefix) {
    const store = open(prefix, zk.port)
    const space = store.shared()
    zkSpaces.set(space, store)
    return { space, close: () => store.close() }
  },
  leaseMs: 2000,
  // The session ends: ZooKeeper removes its ephemeral nodes.
  kill: async (space) => zkSpaces.get(space)?.close(),
  expiryMs: 8000,
})
