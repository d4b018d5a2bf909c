// Containers labelled balancer.tls=true through the real balancer process,
// real Docker and Debian's Pebble with real validation: each container gets
// a certificate of its own for its balancer.hosts (http-01 on the plain
// listener, tls-alpn-01 on the labels' TLS address), served to curl with
// Pebble's root; balancer.tls.acme=false orders nothing and serves the
// uploaded certificate; a stored certificate that covers a container's
// hosts is served instead of ordering, when it is there first and when it
// appears later; a container leaving re-orders nobody else's certificate.
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBalancer, tempDir } from '../e2e/harness.ts'
import type { Running } from '../e2e/harness.ts'
import { TestCa } from '../support/certs.ts'
import { until, within } from '../support/poll.ts'
import { freePorts } from '../support/services/ports.ts'
import { startPebble } from '../support/services/pebble.ts'
import type { Pebble } from '../support/services/pebble.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'

const RUN = runId('dacme')
let pebble: Pebble
let bal: Running
let ca: TestCa
let dir: string
let plain: number
let tls: number
let rootFile: string

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

/** A container of this run serving its name, labelled for HTTPS on the shared TLS address. */
async function web(name: string, hosts: string, extra: Record<string, string> = {}): Promise<void> {
  const labels = { 'balancer.enable': 'true', 'balancer.tls': 'true', 'balancer.address': `:${tls}`, 'balancer.hosts': hosts, 'balancer-test': RUN, ...extra }
  await docker('run', '-d', '--name', `${RUN}-${name}`, '--env', `NAME=${name}`, ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), WEB_IMAGE)
}

function curl(host: string, cacert: string): Promise<{ code: number | null; out: string }> {
  return within(
    new Promise((resolve, reject) => {
      const p = spawn('curl', ['-sS', '--max-time', '5', '--cacert', cacert, '--resolve', `${host}:${tls}:127.0.0.1`, `https://${host}:${tls}/`], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (d: Buffer) => (out += d.toString()))
      p.stderr.on('data', (d: Buffer) => (out += d.toString()))
      p.once('error', reject)
      p.once('close', (code) => resolve({ code, out: out.trim() }))
    }),
    10_000,
    'curl',
  )
}

/** The fingerprint of the certificate a handshake for `servername` gets. */
function served(servername: string): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port: tls, host: '127.0.0.1', servername, rejectUnauthorized: false })
      s.once('error', reject)
      s.once('secureConnect', () => {
        resolve(s.getPeerCertificate().fingerprint256)
        s.destroy()
      })
    }),
    5000,
    'handshake',
  )
}

async function certs(): Promise<any[]> {
  return (await api('GET', '/cert')).json
}

async function acmeOf(name: string): Promise<any> {
  return (await certs()).find((c) => c.name === name)?.acme
}

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  ;[plain, tls] = (await freePorts(2)) as [number, number]
  // A week: the upload below, valid for ten days, outlives it (handshakes get the certificate expiring last).
  pebble = await startPebble({ httpPort: plain, tlsPort: tls, validitySeconds: 7 * 86_400 })
  ca = new TestCa()
  dir = tempDir()
  rootFile = join(dir, 'pebble-root.pem')
  writeFileSync(rootFile, await pebble.root())
  // Where Pebble sends http-01 validation: a plain server, with no route of its own for it.
  writeFileSync(join(dir, 'balancer.json'), JSON.stringify({ servers: [{ address: `:${plain}`, upstreams: [] }] }))
  bal = await startBalancer([
    '--config',
    join(dir, 'balancer.json'),
    '--docker',
    '--docker-constraint',
    `label:balancer-test=${RUN}`,
    '--acme-directory',
    pebble.directory,
    '--acme-ca',
    pebble.listenerCaFile,
    '--acme-retry',
    '1s',
  ])
}, 300_000)

afterAll(async () => {
  await bal?.stop()
  await cleanup(RUN)
  await pebble?.close()
  ca?.remove()
}, 120_000)

describe('balancer.tls=true on containers, certificates from ACME', () => {
  it('orders one certificate per container for its hosts (http-01 and tls-alpn-01), each served to curl; one leaving re-orders nobody else', async () => {
    await web('a', 'a.dacme.test,www.a.dacme.test')
    await web('b', 'b.dacme.test', { 'balancer.tls.challenge': 'tls-alpn-01' })
    await until(async () => (await acmeOf('a.dacme.test'))?.phase === 'valid' && (await acmeOf('b.dacme.test'))?.phase === 'valid', 90_000, 'both certificates')
    const all = await certs()
    expect(all.filter((c) => c.origin === 'acme').map((c) => [c.name, c.names, c.acme.challenge])).toEqual([
      ['a.dacme.test', ['a.dacme.test', 'www.a.dacme.test'], 'http-01'],
      ['b.dacme.test', ['b.dacme.test'], 'tls-alpn-01'],
    ])
    for (const [host, name] of [
      ['a.dacme.test', 'a'],
      ['www.a.dacme.test', 'a'],
      ['b.dacme.test', 'b'],
    ]) {
      const r = await curl(host as string, rootFile)
      expect([host, r.code, r.out]).toEqual([host, 0, name])
    }
    const a = await served('a.dacme.test')
    await docker('rm', '-f', `${RUN}-b`)
    await until(async () => (await acmeOf('b.dacme.test')) === undefined, 10_000, 'b no longer wanted')
    expect(await served('a.dacme.test')).toBe(a)
    expect((await acmeOf('a.dacme.test')).phase).toBe('valid')
    expect(bal.logs.filter((l) => l.msg === 'ACME certificate issued').map((l) => l.cert)).toEqual(expect.arrayContaining(['a.dacme.test', 'b.dacme.test']))
    expect(bal.logs.filter((l) => l.msg === 'ACME certificate issued')).toHaveLength(2)
  }, 150_000)

  it('balancer.tls.acme=false orders nothing and serves an uploaded certificate for the hosts', async () => {
    const up = ca.issue(['c.dacme.test'])
    expect((await api('PUT', '/cert/c.dacme.test', { Cert: up.cert, Key: up.key })).status).toBe(201)
    await web('c', 'c.dacme.test', { 'balancer.tls.acme': 'false' })
    await until(async () => (await curl('c.dacme.test', ca.caFile)).out === 'c', 10_000, 'c served with the uploaded certificate')
    expect(await acmeOf('c.dacme.test')).toBeUndefined()
    expect((await certs()).filter((c) => c.names.includes('c.dacme.test')).map((c) => c.origin)).toEqual(['api'])
  })

  it('a stored certificate covering the hosts is served instead of ordering: there first, or uploaded later', async () => {
    // There first: the container's certificate is never ordered.
    const wild = ca.issue(['*.d.dacme.test', 'd.dacme.test'])
    expect((await api('PUT', '/cert/d-wild', { Cert: wild.cert, Key: wild.key })).status).toBe(201)
    await web('d', 'd.dacme.test,x.d.dacme.test')
    await until(async () => (await acmeOf('d.dacme.test'))?.phase === 'covered', 15_000, 'd covered')
    expect((await acmeOf('d.dacme.test')).coveredBy).toBe('d-wild')
    expect((await curl('x.d.dacme.test', ca.caFile)).out).toBe('d')
    // Uploaded later, over an ACME certificate already served: the uploaded one wins, and ACME takes over again when it goes.
    await web('e', 'e.dacme.test')
    await until(async () => (await acmeOf('e.dacme.test'))?.phase === 'valid', 90_000, "e's ACME certificate")
    const fromAcme = await served('e.dacme.test')
    const later = ca.issue(['e.dacme.test'], { notAfter: new Date(Date.now() + 10 * 86_400_000) })
    expect((await api('PUT', '/cert/e-uploaded', { Cert: later.cert, Key: later.key })).status).toBe(201)
    await until(async () => (await acmeOf('e.dacme.test'))?.phase === 'covered', 10_000, 'e covered by the upload')
    expect((await acmeOf('e.dacme.test')).coveredBy).toBe('e-uploaded')
    expect(await served('e.dacme.test')).toBe(new X509Certificate(later.cert).fingerprint256)
    expect((await api('DELETE', '/cert/e-uploaded')).status).toBe(204)
    await until(async () => (await acmeOf('e.dacme.test'))?.phase === 'valid', 10_000, 'e back on its ACME certificate')
    await until(async () => (await served('e.dacme.test')) === fromAcme, 10_000, 'the ACME certificate served again')
    // Nothing was ordered for d (b's stays stored after it left, until it expires).
    expect(
      readdirSync(join(dir, 'balancer.json.d', 'certs'))
        .filter((n) => !n.startsWith('.'))
        .sort(),
    ).toEqual(['a.dacme.test', 'b.dacme.test', 'c.dacme.test', 'd-wild', 'e.dacme.test'])
  }, 150_000)
})
