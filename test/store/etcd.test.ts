// EtcdStore against a real etcd (Debian's etcd-server) started for this file.

import { execFileSync } from 'node:child_process'
import { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdStore } from '../../src/store/etcd.ts'
import { serverValue } from '../../src/store/kv/layout.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { startEtcd } from '../support/services/etcd.ts'
import { until } from '../support/poll.ts'
import { kvSuite, Recorder, server, TEST_TIMING } from './kv-suite.ts'
import { sharedSuite } from './shared-suite.ts'
import type { SharedSpace } from '../../src/store/shared.ts'

let etcd: Etcd
let raw: Etcd3
const key = (prefix: string, address: string): string => `${prefix}/servers/${encodeURIComponent(address)}`
const hosts = () => [{ host: '127.0.0.1', port: Number(etcd.endpoint.split(':')[1]) }]

beforeAll(async () => {
  etcd = await startEtcd()
  raw = new Etcd3({ hosts: etcd.endpoint })
})
afterAll(async () => {
  raw?.close()
  await etcd?.close()
})

kvSuite({
  name: 'etcd',
  open: (prefix, opts) => new EtcdStore({ hosts: hosts(), prefix, location: `etcd://${etcd.endpoint}${prefix}`, ...opts }),
  async put(prefix, address, value) {
    await raw.put(key(prefix, address)).value(value)
  },
  putSync(prefix, address, value) {
    execFileSync('/usr/bin/etcdctl', ['--endpoints', etcd.endpoint, 'put', key(prefix, address), value], { env: { ...process.env, ETCDCTL_API: '3' } })
  },
  async dump(prefix) {
    const all = await raw.getAll().prefix(`${prefix}/servers/`).strings()
    return new Map(Object.entries(all).map(([k, v]) => [decodeURIComponent(k.slice(prefix.length + '/servers/'.length)), v]))
  },
  stop: () => etcd.stop(),
  start: () => etcd.proc.start(),
  freeze: () => etcd.freeze(),
  resume: () => etcd.resume(),
})

describe('etcd specifics', () => {
  it('an etcdctl edit reaches watch, and a watch whose start revision was compacted re-reads in full', async () => {
    const store = new EtcdStore({ hosts: hosts(), prefix: '/compact', location: 'etcd', ...TEST_TIMING })
    const ac = new AbortController()
    try {
      await store.load()
      // Changes made after the load, then compacted away: the watch starts from the load's revision.
      await etcd.ctl('put', key('/compact', ':8101'), serverValue(server(8101)))
      await etcd.ctl('put', key('/compact', ':8102'), serverValue(server(8102)))
      const rev = /"revision":(\d+)/.exec(await etcd.ctl('endpoint', 'status', '-w', 'json'))?.[1] ?? ''
      await etcd.ctl('compact', rev)
      const rec = new Recorder()
      store.watch(ac.signal, rec.handlers)
      await until(() => rec.last()?.config.servers.length === 2, 2000, 'the full re-read after compaction')
      expect(rec.errors()).toEqual([])
      const t0 = Date.now()
      await etcd.ctl('put', key('/compact', ':8103'), serverValue(server(8103)))
      await until(() => rec.last()?.config.servers.length === 3, 1000, 'an etcdctl put')
      console.log(`[etcd] etcdctl put -> watch: ${Date.now() - t0} ms`)
    } finally {
      ac.abort()
      await store.close()
    }
  })
})

const etcdSpaces = new Map<SharedSpace, EtcdStore>()
sharedSuite({
  name: 'etcd',
  open(prefix) {
    const store = new EtcdStore({ hosts: hosts(), prefix, location: `etcd://${etcd.endpoint}${prefix}`, ...TEST_TIMING })
    const space = store.shared()
    etcdSpaces.set(space, store)
    return { space, close: () => store.close() }
  },
  leaseMs: 2000,
  // A dead holder sends no more keep-alives: closing its client without revoking does the same.
  kill: async (space) => etcdSpaces.get(space)?.close(),
  expiryMs: 8000,
})
