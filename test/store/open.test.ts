// Store URLs: every form the --store flag documents, and the errors for the rest.

import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openStore } from '../../src/store/open.ts'
import { parseKvUrl } from '../../src/store/store-url.ts'

describe('parseKvUrl', () => {
  it('reads several hosts, default ports, userinfo, and normalises the prefix', () => {
    const u = parseKvUrl('etcd://root:p%40ss@10.0.0.1:2379,etcd-2,[::1]:2380//balancer//prod/')
    expect(u).toEqual({
      scheme: 'etcd',
      hosts: [
        { host: '10.0.0.1', port: 2379 },
        { host: 'etcd-2', port: 2379 },
        { host: '::1', port: 2380 },
      ],
      prefix: '/balancer/prod',
      user: 'root',
      password: 'p@ss',
      location: 'etcd://10.0.0.1:2379,etcd-2:2379,[::1]:2380/balancer/prod',
    })
    expect(parseKvUrl('zk://zk1:2181,zk2/cfg').hosts).toEqual([
      { host: 'zk1', port: 2181 },
      { host: 'zk2', port: 2181 },
    ])
    expect(parseKvUrl('zookeeper://zk1/cfg').scheme).toBe('zookeeper')
    expect(parseKvUrl('consul://127.0.0.1/balancer').hosts).toEqual([{ host: '127.0.0.1', port: 8500 }])
  })

  it('refuses a missing prefix, bad hosts, queries, and several Consul hosts, all at once', () => {
    const err = (() => {
      try {
        parseKvUrl('consul://a:1,b:99999?x=1')
      } catch (e) {
        return e as { code: string; problems: Array<{ path: string; message: string }> }
      }
      return null
    })()
    expect(err?.code).toBe('E_VALIDATION')
    expect(err?.problems.map((p) => p.path)).toEqual(['--store', '--store', '--store', '--store'])
    expect(err?.problems.map((p) => p.message).join('\n')).toMatch(/query strings[\s\S]*b:99999[\s\S]*one host[\s\S]*prefix is required/)
    expect(() => parseKvUrl('etcd://h:1/a/../b')).toThrow(/"\." or "\.\."/)
  })
})

describe('openStore', () => {
  it('keeps file:// and bare paths on the file store', async () => {
    expect((await openStore('file:///tmp/x.json')).kind).toBe('file')
    expect((await openStore('cfg/balancer.json')).kind).toBe('file')
  })

  it('opens each KV store, without credentials in its location', async () => {
    const e = await openStore('etcd://u:secret@127.0.0.1:1/b', {})
    const c = await openStore('consul://tok@127.0.0.1:1/b', {})
    const z = await openStore('zk://u:secret@127.0.0.1:1/b', {})
    expect([e.kind, c.kind, z.kind]).toEqual(['etcd', 'consul', 'zookeeper'])
    expect(e.location).toBe('etcd://127.0.0.1:1/b')
    expect(z.location).toBe('zk://127.0.0.1:1/b')
    expect([e.location, c.location, z.location].join()).not.toMatch(/secret|tok@/)
    await Promise.all([e.close(), c.close(), z.close()])
  })

  it('names --store for an unknown scheme', async () => {
    await expect(openStore('redis://h/b')).rejects.toThrow(/--store: unsupported store "redis"/)
  })

  it('reports unreadable TLS files, half a client certificate and bad durations by variable name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'balancer-open-'))
    writeFileSync(join(dir, 'cert.pem'), 'x')
    const env = { BALANCER_ETCD_CA: join(dir, 'missing.pem'), BALANCER_ETCD_CERT: join(dir, 'cert.pem'), BALANCER_STORE_TIMEOUT: 'soon' }
    let problems: Array<{ path: string }> = []
    try {
      await openStore('etcd://127.0.0.1/b', env)
    } catch (e) {
      problems = (e as { problems: Array<{ path: string }> }).problems
    }
    expect(problems.map((p) => p.path).sort()).toEqual(['BALANCER_ETCD_CA', 'BALANCER_ETCD_CERT', 'BALANCER_STORE_TIMEOUT'])
    await expect(openStore('zk://127.0.0.1/b', { BALANCER_ZK_AUTH: 'digest' })).rejects.toThrow(/BALANCER_ZK_AUTH/)
  })
})
