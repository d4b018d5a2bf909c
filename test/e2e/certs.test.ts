// Certificates kept in the store, through the real balancer: PUT /cert as
// JSON and as PEM text, GET /cert, a `"tls": {}` server serving them by SNI,
// bad uploads refused with nothing stored, no answer ever carrying a key,
// the file store's directory (mode 0600), a certificate broken by hand in
// the store, and two instances on one etcd: one stores, the other serves.

import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import type { PeerCertificate } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestCa } from '../support/certs.ts'
import type { IssuedCert } from '../support/certs.ts'
import { startEtcd } from '../support/services/etcd.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { within } from '../support/poll.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let ca: TestCa
let www: IssuedCert
let up: HttpUpstream
let bal: Running
let dir: string
let port: number
/** Every API answer body seen: none may hold a private key. */
const answers: string[] = []

async function api(b: Running, method: string, path: string, body?: string | object, type?: string): Promise<{ status: number; json: any; text: string }> {
  const headers: Record<string, string> = {}
  if (type !== undefined) headers['content-type'] = type
  else if (typeof body === 'object') headers['content-type'] = 'application/json'
  const res = await fetch(`${b.api}${path}`, { method, headers, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) })
  const text = await res.text()
  answers.push(text)
  let json: any = null
  try {
    json = text === '' ? null : JSON.parse(text)
  } catch {
    json = null
  }
  return { status: res.status, json, text }
}

function peer(p: number, servername: string): Promise<PeerCertificate> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port: p, host: '127.0.0.1', ca: ca.caPem, servername, checkServerIdentity: () => undefined })
      s.once('error', reject)
      s.once('secureConnect', () => {
        resolve(s.getPeerCertificate())
        s.destroy()
      })
    }),
    5000,
    `handshake for ${servername}`,
  )
}

beforeAll(async () => {
  ca = new TestCa()
  www = ca.issue(['www.test'], { notAfter: new Date(Date.now() + 90 * 86_400_000) })
  dir = tempDir()
  up = await httpUpstream((req, res) => res.end(`via ${req.headers['x-forwarded-proto']}`))
  port = await freePort()
  bal = await startBalancer(['--config', join(dir, 'balancer.json'), '--workers', '2'])
  const created = await api(bal, 'POST', '/server', { address: `127.0.0.1:${port}`, tls: {}, filter: { Hosts: ['www.test', '*.wild.test'] }, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })
  expect(created.status).toBe(201)
}, 60_000)

afterAll(async () => {
  await bal?.stop()
  await up?.close()
  ca?.remove()
})

describe('certificates in the store', () => {
  it('a "tls": {} server has nothing to serve until a certificate is stored', async () => {
    await expect(peer(port, 'www.test')).rejects.toThrow()
  })

  it('PUT /cert as JSON stores it; GET /cert lists it without its key; the server serves it by SNI and by default', async () => {
    const r = await api(bal, 'PUT', '/cert/www.test', { Cert: www.cert, Key: www.key })
    expect(r.status).toBe(201)
    expect(r.json).toMatchObject({ name: 'www.test', origin: 'api', state: 'valid', names: ['www.test'] })
    expect(r.json.issuer).toMatch(/Balancer Test CA/)
    const list = await api(bal, 'GET', '/cert')
    expect(list.json.map((c: { name: string }) => c.name)).toEqual(['www.test'])
    expect(Date.parse(list.json[0].notAfter)).toBe(www.notAfter)
    await until(async () => (await peer(port, 'www.test').catch(() => null))?.subjectaltname === 'DNS:www.test', 5000, 'the stored certificate to be served')
    // No SNI: the certificate covering the server's first host.
    expect((await peer(port, '')).subjectaltname).toBe('DNS:www.test')
  })

  it('PUT /cert as PEM text (curl --data-binary) stores chain and key together', async () => {
    const wild = ca.issue(['*.wild.test'])
    const r = await api(bal, 'PUT', '/cert/wild', `${wild.cert}${wild.key}`, 'application/x-www-form-urlencoded')
    expect(r.status, r.text).toBe(201)
    expect(r.json.names).toEqual(['*.wild.test'])
    await until(async () => (await peer(port, 'a.wild.test').catch(() => null))?.subjectaltname === 'DNS:*.wild.test', 5000, 'the wildcard to be served')
  })

  it('refuses a key of another certificate, an expired certificate, garbage and a PEM without key, and stores nothing', async () => {
    const other = ca.issue(['other.test'])
    const expired = ca.issue(['old.test'], { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') })
    const before = (await api(bal, 'GET', '/cert')).json
    const cases: Array<[string | object, string | undefined, string, RegExp]> = [
      [{ Cert: www.cert, Key: other.key }, undefined, 'body.Key', /is not the key of the certificate/],
      [{ Cert: expired.cert, Key: expired.key }, undefined, 'body.Cert', /expired on 2020-02-01/],
      [{ Cert: 'garbage', Key: www.key }, undefined, 'body.Cert', /holds no PEM certificate/],
      [{ Cert: www.cert, Key: 'garbage' }, undefined, 'body.Key', /is not a PEM private key/],
      [www.cert, 'application/x-pem-file', 'body', /holds no PEM private key/],
    ]
    for (const [body, type, path, message] of cases) {
      const r = await api(bal, 'PUT', '/cert/bad', body, type)
      expect(r.status, r.text).toBe(400)
      expect(r.json.code).toBe('E_TLS_CERT')
      expect(r.json.problems[0].path).toBe(path)
      expect(r.json.problems[0].message).toMatch(message)
    }
    expect((await api(bal, 'PUT', '/cert/..bad', { Cert: www.cert, Key: www.key })).json.code).toBe('E_VALIDATION')
    expect((await api(bal, 'GET', '/cert')).json).toEqual(before)
    expect((await api(bal, 'GET', '/cert/bad')).status).toBe(404)
  })

  it('keeps them beside the config file, files mode 0600', () => {
    const certs = join(dir, 'balancer.json.d', 'certs')
    expect(readdirSync(certs).sort()).toEqual(['wild', 'www.test'])
    for (const f of readdirSync(certs)) expect(statSync(join(certs, f)).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'balancer.json.d')).mode & 0o777).toBe(0o700)
    expect(readFileSync(join(certs, 'www.test'), 'utf8')).toContain('PRIVATE KEY')
  })

  it('shows a certificate broken by hand in the store as an error and keeps serving the others', async () => {
    writeFileSync(join(dir, 'balancer.json.d', 'certs', 'broken'), '{"name":"broken","cert":"x","key":"y"}', { mode: 0o600 })
    await until(async () => (await api(bal, 'GET', '/cert')).json.some((c: { name: string; state: string }) => c.name === 'broken' && c.state === 'error'), 5000, 'the broken one to be listed')
    const broken = (await api(bal, 'GET', '/cert')).json.find((c: { name: string }) => c.name === 'broken')
    expect(broken.error).toMatch(/holds no PEM certificate/)
    expect((await peer(port, 'www.test')).subjectaltname).toBe('DNS:www.test')
    expect((await api(bal, 'DELETE', '/cert/broken')).status).toBe(204)
  })

  it('DELETE /cert removes it from every listener', async () => {
    expect((await api(bal, 'DELETE', '/cert/wild')).status).toBe(204)
    expect((await api(bal, 'DELETE', '/cert/wild')).status).toBe(404)
    await until(async () => (await peer(port, 'a.wild.test')).subjectaltname !== 'DNS:*.wild.test', 5000, 'the wildcard to be gone')
  })

  it('no answer so far carried a private key', async () => {
    await api(bal, 'GET', '/')
    await api(bal, 'GET', '/status')
    await api(bal, 'GET', '/cert/www.test')
    expect(answers.length).toBeGreaterThan(10)
    // Key material (a PEM key's first base64 line, raw or JSON-escaped), or a field named key.
    const material = www.key.split('\n')[1] ?? 'no key line'
    for (const a of answers) {
      expect(a).not.toContain(material)
      expect(a).not.toMatch(/PRIVATE KEY-----(\\n|\n)[A-Za-z0-9+/]{16}/)
      expect(a).not.toMatch(/"key"\s*:\s*"-----BEGIN/i)
    }
  })
})

describe('two instances on one etcd', () => {
  let etcd: Etcd
  let a: Running
  let b: Running
  beforeAll(async () => {
    etcd = await startEtcd()
    const url = `etcd://${etcd.endpoint}/certs-e2e`
    ;[a, b] = await Promise.all([startBalancer(['--store', url]), startBalancer(['--store', url])])
  }, 60_000)
  afterAll(async () => {
    await a?.stop()
    await b?.stop()
    await etcd?.close()
  })

  it('a certificate stored through one is served by the other, kept under <prefix>/certs/', async () => {
    const p = await freePort()
    expect((await api(a, 'POST', '/server', { address: `127.0.0.1:${p}`, tls: {}, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })).status).toBe(201)
    const shared = ca.issue(['shared.test'])
    expect((await api(a, 'PUT', '/cert/shared.test', { Cert: shared.cert, Key: shared.key })).status).toBe(201)
    expect(await etcd.ctl('get', '--keys-only', '--prefix', '/certs-e2e/certs/')).toContain('/certs-e2e/certs/shared.test')
    await until(async () => (await api(b, 'GET', '/cert')).json.some((c: { name: string }) => c.name === 'shared.test'), 5000, 'b to list it')
    await until(async () => (await api(b, 'GET', '/status')).json.engine.listeners.some((l: { tls: boolean }) => l.tls), 5000, 'b to listen')
    // Both listen on the port (SO_REUSEPORT); with a gone, every handshake is b's.
    await a.stop()
    for (let i = 0; i < 3; i++) expect((await peer(p, 'shared.test')).subjectaltname).toBe('DNS:shared.test')
  })
})
