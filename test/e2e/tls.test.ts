// HTTPS through the real balancer process with two workers: a server with
// certificate files created through the API (the body the benchmark sends),
// refused certificates with a clear error and nothing stored, session
// tickets that resume on either worker, and a certificate file renewed
// while wrk keeps a TLS keep-alive load on (no request fails), or replaced
// by a broken one (the last good one keeps serving).

import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { connect as http2Connect } from 'node:http2'
import { join, resolve } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import type { PeerCertificate } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestCa } from '../support/certs.ts'
import { RawClient } from '../support/client.ts'
import type { IssuedCert } from '../support/certs.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { within } from '../support/poll.ts'
import { freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let ca: TestCa
let good: IssuedCert
let up: HttpUpstream
let bal: Running
let port: number
let dir: string
/** The files the server names; tests rewrite them. */
let certFile: string
let keyFile: string

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

function peer(servername = 'main.test'): Promise<{ cert: PeerCertificate; reused: boolean }> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port, host: '127.0.0.1', ca: ca.caPem, servername })
      s.once('error', reject)
      s.once('secureConnect', () => {
        resolve({ cert: s.getPeerCertificate(), reused: s.isSessionReused() })
        s.destroy()
      })
    }),
    5000,
    'handshake',
  )
}

function run(cmd: string, args: string[], ms: number): Promise<{ code: number | null; out: string }> {
  return within(
    new Promise((resolve, reject) => {
      const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (d: Buffer) => (out += d.toString()))
      p.stderr.on('data', (d: Buffer) => (out += d.toString()))
      p.once('error', reject)
      p.once('close', (code) => resolve({ code, out }))
    }),
    ms,
    cmd,
  )
}

beforeAll(async () => {
  ca = new TestCa()
  good = ca.issue(['main.test', '127.0.0.1'])
  dir = tempDir()
  certFile = join(dir, 'site.pem')
  keyFile = join(dir, 'site.key')
  copyFileSync(good.certFile, certFile)
  copyFileSync(good.keyFile, keyFile)
  up = await httpUpstream((req, res) => res.end(`hello ${req.headers['x-forwarded-proto']}`))
  port = await freePort()
  bal = await startBalancer(['--config', join(dir, 'balancer.json'), '--workers', '2'])
  const created = await api('POST', '/server', {
    address: `127.0.0.1:${port}`,
    tls: { Certificates: [{ CertFile: certFile, KeyFile: keyFile }] },
    upstreams: [{ Target: '127.0.0.1', Port: up.port }],
  })
  expect(created.status).toBe(201)
}, 60_000)

afterAll(async () => {
  await bal?.stop()
  await up?.close()
  ca?.remove()
})

describe('a TLS server through the API', () => {
  it('serves HTTPS that curl accepts with the CA, and GET / writes the tls group back canonically', async () => {
    const r = await run('curl', ['-sS', '--cacert', ca.caFile, '--resolve', `main.test:${port}:127.0.0.1`, `https://main.test:${port}/`], 10_000)
    expect(r.out).toBe('hello https')
    const cfg = await api('GET', '/')
    expect(cfg.json.servers[0].tls).toEqual({ Certificates: [{ CertFile: certFile, KeyFile: keyFile }] })
    expect(Object.keys(cfg.json.servers[0]).slice(0, 2)).toEqual(['address', 'tls'])
    // Editing the server's own route (its filter) keeps its tls group.
    expect((await api('PUT', `/server/127.0.0.1:${port}/filter`, { Hosts: [] })).status).toBe(200)
    expect((await api('GET', `/server/127.0.0.1:${port}`)).json.tls).toEqual({ Certificates: [{ CertFile: certFile, KeyFile: keyFile }] })
  })

  it('refuses broken certificates with E_TLS_CERT naming the field and the problem, and stores nothing', async () => {
    const other = ca.issue(['other.test'])
    const expired = ca.issue(['old.test'], { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') })
    const garbage = join(dir, 'garbage.pem')
    writeFileSync(garbage, 'this is not a certificate\n')
    const cases: Array<[{ CertFile: string; KeyFile: string }, string, RegExp]> = [
      [{ CertFile: garbage, KeyFile: good.keyFile }, 'CertFile', /holds no PEM certificate/],
      [{ CertFile: good.certFile, KeyFile: other.keyFile }, 'KeyFile', /is not the key of the certificate/],
      [{ CertFile: expired.certFile, KeyFile: expired.keyFile }, 'CertFile', /expired on 2020-02-01/],
      [{ CertFile: join(dir, 'missing.pem'), KeyFile: good.keyFile }, 'CertFile', /no such file/],
      [{ CertFile: good.certFile, KeyFile: garbage }, 'KeyFile', /not a PEM private key/],
    ]
    const before = await api('GET', '/')
    for (const [pair, field, message] of cases) {
      const p = await freePort()
      const r = await api('POST', '/server', { address: `127.0.0.1:${p}`, tls: { Certificates: [pair] }, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })
      expect(r.status, JSON.stringify(r.json)).toBe(400)
      expect(r.json.code).toBe('E_TLS_CERT')
      expect(r.json.problems[0].path).toBe(`body.tls.Certificates[0].${field}`)
      expect(r.json.problems[0].message).toMatch(message)
    }
    expect((await api('GET', '/')).json).toEqual(before.json)
  })

  it('resumes a session on whichever worker takes the connection (shared ticket keys)', async () => {
    const session = await within(
      new Promise<Buffer>((resolve, reject) => {
        const s = tlsConnect({ port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test' })
        s.once('error', reject)
        s.once('session', (b: Buffer) => {
          resolve(b)
          s.destroy()
        })
        s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: main.test\r\n\r\n'))
      }),
      5000,
      'a session ticket',
    )
    let reused = 0
    for (let i = 0; i < 12; i++) {
      reused += await new Promise<number>((resolve, reject) => {
        const s = tlsConnect({ port, host: '127.0.0.1', ca: ca.caPem, servername: 'main.test', session })
        s.once('error', reject)
        s.once('secureConnect', () => {
          resolve(s.isSessionReused() ? 1 : 0)
          s.destroy()
        })
      })
    }
    expect(reused).toBe(12)
  })
})

describe("Strict-Transport-Security on the balancer's own answers over TLS", () => {
  it('403 (access), 401 (BasicAuth), 429 (ratelimit) and 503 (no upstream answers) carry the route HSTS, over HTTP/1.1 and HTTP/2; plain HTTP never does', async () => {
    const tlsPort = await freePort()
    const plainPort = await freePort()
    const refused = await freePort()
    const hash = execFileSync('htpasswd', ['-nbB', 'alice', 'alice-pw'], { encoding: 'utf8' }).trim()
    const routes = [
      { name: 'deny', filter: { PathPrefix: '/deny' }, upstreams: [{ Target: '127.0.0.1', Port: up.port }], access: { Deny: ['0.0.0.0/0', '::/0'] } },
      { name: 'auth', filter: { PathPrefix: '/auth' }, upstreams: [{ Target: '127.0.0.1', Port: up.port }], access: { BasicAuth: [hash] } },
      { name: 'limited', filter: { PathPrefix: '/limited' }, upstreams: [{ Target: '127.0.0.1', Port: up.port }], ratelimit: { Average: 0.01, Burst: 1 } },
      { name: 'down', filter: { PathPrefix: '/down' }, upstreams: [{ Target: '127.0.0.1', Port: refused }] },
    ]
    const tls = { Certificates: [{ CertFile: certFile, KeyFile: keyFile }] }
    expect((await api('POST', '/server', { address: `127.0.0.1:${tlsPort}`, tls, hsts: { MaxAge: 600 }, upstreams: [{ Target: '127.0.0.1', Port: up.port }], routes })).status).toBe(201)
    expect((await api('POST', '/server', { address: `127.0.0.1:${plainPort}`, hsts: { MaxAge: 600 }, upstreams: [{ Target: '127.0.0.1', Port: up.port }], routes })).status).toBe(201)
    try {
      const want: Array<[string, number]> = [
        ['/deny', 403],
        ['/auth', 401],
        ['/limited', 200],
        ['/limited', 429],
        ['/down', 503],
        ['/', 200],
      ]
      const http1 = await RawClient.connectTls(tlsPort, { ca: ca.caPem, servername: 'main.test', ALPNProtocols: ['http/1.1'] })
      try {
        for (const [path, status] of want) {
          http1.write(`GET ${path} HTTP/1.1\r\nHost: main.test\r\n\r\n`)
          const r = await http1.read()
          expect([path, r.status]).toEqual([path, status])
          expect([path, r.headers.filter(([k]) => k === 'strict-transport-security').map(([, v]) => v)]).toEqual([path, ['max-age=600']])
        }
      } finally {
        http1.destroy()
      }
      const h2 = http2Connect(`https://main.test:${tlsPort}`, { ca: ca.caPem, host: '127.0.0.1', servername: 'main.test' })
      try {
        // The bucket is the worker's: the first /limited here may be this connection's worker's first (200), the second is not.
        for (const [path, status] of [
          ['/deny', 403],
          ['/auth', 401],
          ['/limited', null],
          ['/limited', 429],
          ['/down', 503],
        ] as const) {
          const head = await within(
            new Promise<Record<string, unknown>>((resolve, reject) => {
              const req = h2.request({ ':path': path })
              req.once('response', (h) => resolve(h as Record<string, unknown>))
              req.once('error', reject)
              req.resume()
              req.end()
            }),
            5000,
            `h2 ${path}`,
          )
          expect([path, status ?? head[':status'], head['strict-transport-security']]).toEqual([path, head[':status'], 'max-age=600'])
        }
      } finally {
        h2.close()
      }
      const plain = await RawClient.connect(plainPort)
      try {
        for (const [path, status] of [
          ['/deny', 403],
          ['/auth', 401],
          ['/down', 503],
        ] as const) {
          plain.write(`GET ${path} HTTP/1.1\r\nHost: main.test\r\n\r\n`)
          const r = await plain.read()
          expect([path, r.status, r.headers.some(([k]) => k === 'strict-transport-security')]).toEqual([path, status, false])
        }
      } finally {
        plain.destroy()
      }
    } finally {
      await api('DELETE', `/server/127.0.0.1:${tlsPort}`)
      await api('DELETE', `/server/127.0.0.1:${plainPort}`)
    }
  })
})

describe('the README quick start for HTTPS, run as written', () => {
  it('makes a self-signed certificate, stores a TLS server with curl, and curl --cacert gets the page over HTTPS', async () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('### HTTPS with a certificate file'))
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
    expect(block).toContain('openssl req -x509')
    const p = await freePort()
    const script = block
      .replaceAll('localhost:9123', bal.api.replace('http://', ''))
      .replaceAll('8443', String(p))
      .replace('"Target":"www.google.com","Port":80', `"Target":"127.0.0.1","Port":${up.port}`)
    const cwd = tempDir()
    const r = await within(
      new Promise<{ code: number | null; out: string }>((done, fail) => {
        const sh = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        sh.stdout.on('data', (d: Buffer) => (out += d.toString()))
        sh.stderr.on('data', (d: Buffer) => (out += d.toString()))
        sh.once('error', fail)
        sh.once('close', (code) => done({ code, out }))
      }),
      20_000,
      'the quick start',
    )
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/hello https$/)
  })
})

describe('certificate files renewed in place', () => {
  it('serves a renewed pair on the next handshake while wrk keeps a TLS keep-alive load: no request fails', async () => {
    const renewed = ca.issue(['main.test', '127.0.0.1', 'renewed.test'])
    const load = run('wrk', ['-t1', '-c8', '-d4s', `https://127.0.0.1:${port}/`], 30_000)
    // Once wrk's connections are all up: the key, then the certificate, each replaced by a rename (as certificate tools do).
    const conns = async (): Promise<number> => ((await api('GET', '/status')).json.engine.listeners as Array<{ connections: number }>).reduce((n, l) => n + l.connections, 0)
    await until(async () => (await conns()) >= 8, 10_000, "wrk's connections")
    copyFileSync(renewed.keyFile, `${keyFile}.tmp`)
    renameSync(`${keyFile}.tmp`, keyFile)
    copyFileSync(renewed.certFile, `${certFile}.tmp`)
    renameSync(`${certFile}.tmp`, certFile)
    await until(async () => ((await peer()).cert.subjectaltname ?? '').includes('renewed.test'), 10_000, 'the renewed certificate to be served')
    const { out } = await load
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
    expect(requests, out).toBeGreaterThan(100)
    expect(out).not.toMatch(/Socket errors/)
    expect(out).not.toMatch(/Non-2xx/)
  }, 40_000)

  it('keeps serving the last good pair when the files are replaced by a broken one, and says why in the log', async () => {
    const before = (await peer()).cert.fingerprint256
    writeFileSync(`${certFile}.tmp`, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
    renameSync(`${certFile}.tmp`, certFile)
    const line = await bal.waitLog((l) => l.msg === 'certificate files changed but cannot be used; the last good certificate keeps serving', 10_000)
    expect(String(line.err)).toMatch(/does not parse/)
    expect((await peer()).cert.fingerprint256).toBe(before)
    const r = await run('curl', ['-sS', '--cacert', ca.caFile, '--resolve', `main.test:${port}:127.0.0.1`, `https://main.test:${port}/`], 10_000)
    expect(r.out).toBe('hello https')
  })
})
