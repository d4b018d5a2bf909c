// ConsulStore against the Consul STAND-IN (test/support/consul-standin.ts): no
// Consul server can be installed on these machines, so the parts of Consul's
// HTTP API the store uses are served by a real HTTP server that follows
// Consul's documented behaviour.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer } from 'node:tls'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConsulStore } from '../../src/store/consul.ts'
import type { KvStoreOptions } from '../../src/store/kv/options.ts'
import { serverValue } from '../../src/store/kv/layout.ts'
import { ConsulStandIn } from '../support/consul-standin.ts'
import { until } from '../support/poll.ts'
import { kvSuite, Recorder, server, TEST_TIMING, withServer } from './kv-suite.ts'
import { sharedSuite } from './shared-suite.ts'
import type { SharedSpace } from '../../src/store/shared.ts'

const consul = new ConsulStandIn()
const key = (prefix: string, address: string): string => `${prefix.slice(1)}/servers/${encodeURIComponent(address)}`
const kvUrl = (k: string): string => `${consul.url}/v1/kv/${k.split('/').map(encodeURIComponent).join('/')}`

beforeAll(() => consul.start())
afterAll(() => consul.close())

const open = (prefix: string, opts: Partial<KvStoreOptions> & { token?: string } = {}, standin = consul) =>
  new ConsulStore({ hosts: [{ host: '127.0.0.1', port: standin.port }], prefix, location: `consul://127.0.0.1:${standin.port}${prefix}`, ...TEST_TIMING, ...opts })

kvSuite({
  name: 'consul',
  open: (prefix, opts) => open(prefix, opts),
  async put(prefix, address, value) {
    const res = await fetch(kvUrl(key(prefix, address)), { method: 'PUT', body: value })
    expect(await res.json()).toBe(true)
  },
  putSync: (prefix, address, value) => consul.put(key(prefix, address), value),
  async dump(prefix) {
    const res = await fetch(`${kvUrl(`${prefix.slice(1)}/servers/`)}?recurse`, { signal: AbortSignal.timeout(1000) })
    if (res.status === 404) return new Map()
    const entries = (await res.json()) as Array<{ Key: string; Value: string | null }>
    return new Map(entries.filter((e) => !e.Key.endsWith('/')).map((e) => [decodeURIComponent(e.Key.slice(e.Key.lastIndexOf('/') + 1)), Buffer.from(e.Value ?? '', 'base64').toString('utf8')]))
  },
  stop: () => consul.stop(),
  start: () => consul.start(),
  freeze: () => consul.freeze(),
  resume: () => consul.resume(),
})

/** The store's watch is blocked on a query of its prefix (it has read the store and waits for a change). */
function watching(prefix: string): boolean {
  return consul.requests.some((r) => r.method === 'GET' && r.url.includes(encodeURIComponent(prefix).replace(/%2F/g, '/')) && /[?&]index=[1-9]/.test(r.url))
}

describe('consul specifics (against the stand-in)', () => {
  it('re-reads everything when the index goes backwards (snapshot restore)', async () => {
    const store = open('/restore')
    const ac = new AbortController()
    try {
      await store.update(withServer(server(8301)))
      const snap = consul.snapshot()
      await store.update(withServer(server(8302)))
      await store.update(withServer(server(8303)))
      const rec = new Recorder()
      store.watch(ac.signal, rec.handlers)
      await until(() => watching('/restore'), 2000, 'the watch to block on the store')
      consul.restore(snap)
      await until(() => rec.last()?.config.servers.length === 1, 2000, 'the restored content')
      // The index is lower than before; the watch follows it from there.
      await fetch(kvUrl(key('/restore', ':8304')), { method: 'PUT', body: serverValue(server(8304)) })
      await until(() => rec.last()?.config.servers.length === 2, 1000, 'a write after the restore')
      expect(rec.errors()).toEqual([])
    } finally {
      ac.abort()
      await store.close()
    }
  })

  it('treats wake-ups without a change as no change, and does not spin', async () => {
    const store = open('/wake')
    const ac = new AbortController()
    try {
      await store.update(withServer(server(8311)))
      const rec = new Recorder()
      store.watch(ac.signal, rec.handlers)
      await until(() => watching('/wake'), 2000, 'the watch to block on the store')
      const before = consul.requests.length
      for (let i = 0; i < 40; i++) {
        consul.wakeAll()
        // Pacing, not waiting: the wake-ups are spread over ~200 ms, as a busy cluster spreads them.
        await new Promise((r) => setTimeout(r, 5))
      }
      const made = consul.requests.length - before
      console.log(`[consul] 40 empty wake-ups in ~${40 * 5} ms -> ${made} requests`)
      expect(made).toBeLessThanOrEqual(12)
      expect(rec.changes()).toEqual([])
      expect(rec.errors()).toEqual([])
    } finally {
      ac.abort()
      await store.close()
    }
  })

  it('sends the ACL token, and reports a refusal as the store being unavailable', async () => {
    const secured = new ConsulStandIn({ token: 's3cret-token' })
    await secured.start()
    const good = open('/acl', { token: 's3cret-token' }, secured)
    const bad = open('/acl', { token: 'wrong' }, secured)
    try {
      await good.update(withServer(server(8321)))
      expect((await good.load()).config.servers).toHaveLength(1)
      const err = await bad.load().catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'E_STORE_UNAVAILABLE' })
      expect(String((err as Error).message)).toContain('403')
      expect(String((err as Error).message)).not.toContain('s3cret')
      expect(bad.health().state).toBe('unreachable')
    } finally {
      await good.close()
      await bad.close()
      await secured.close()
    }
  })
})

describe('consul over HTTPS', () => {
  it('speaks TLS with the CA and client certificate given (BALANCER_CONSUL_CA/_CERT/_KEY), and fails without the CA', async () => {
    // Certificates made with openssl; a TLS listener that requires a client certificate, in front of the stand-in.
    const dir = mkdtempSync(join(tmpdir(), 'balancer-consul-tls-'))
    const openssl = (...args: string[]): void => {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    }
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca-key.pem', '-out', 'ca.pem')
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
    for (const who of ['server', 'client']) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}-key.pem`, '-out', `${who}.csr`)
      openssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`, '-out', `${who}-cert.pem`)
    }
    const pem = (name: string): Buffer => readFileSync(join(dir, name))
    const sockets = new Set<TLSSocket>()
    const front = createTlsServer({ key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true }, (down) => {
      sockets.add(down)
      const up = tcpConnect(consul.port, '127.0.0.1')
      down.pipe(up).pipe(down)
      const drop = (): void => {
        down.destroy()
        up.destroy()
        sockets.delete(down)
      }
      down.on('error', drop).on('close', drop)
      up.on('error', drop).on('close', drop)
    })
    front.on('tlsClientError', () => {})
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
    const port = (front.address() as { port: number }).port
    const at = (tls: { ca: Buffer | null; cert: Buffer | null; key: Buffer | null }): ConsulStore =>
      new ConsulStore({ hosts: [{ host: '127.0.0.1', port }], prefix: '/tls', location: `consul://127.0.0.1:${port}/tls`, ...TEST_TIMING, tls })
    const good = at({ ca: pem('ca.pem'), cert: pem('client-cert.pem'), key: pem('client-key.pem') })
    const noCa = at({ ca: null, cert: pem('client-cert.pem'), key: pem('client-key.pem') })
    try {
      await good.update(withServer(server(8331)))
      expect((await good.load()).config.servers.map((x) => x.address)).toEqual([':8331'])
      await expect(noCa.load()).rejects.toMatchObject({ code: 'E_STORE_UNAVAILABLE' })
    } finally {
      await good.close()
      await noCa.close()
      for (const x of sockets) x.destroy()
      front.close()
    }
  })
})

const consulSpaces = new Map<SharedSpace, ConsulStore>()
sharedSuite({
  name: 'consul',
  open(prefix) {
    const store = open(prefix)
    const space = store.shared()
    consulSpaces.set(space, store)
    return { space, close: () => store.close() }
  },
  // Consul's shortest session TTL.
  leaseMs: 10_000,
  // No more renewals reach the stand-in: it invalidates the session after its TTL.
  kill: async (space) => consulSpaces.get(space)?.close(),
  expiryMs: 25_000,
})
