// ACME against Debian's Pebble with real validation, one balancer (two
// engine workers, both answering the challenges): an
// http-01 certificate (two names) and a tls-alpn-01 one, each accepted by
// curl with Pebble's root; the ACME state in GET /cert and the store; and a
// short-lived certificate renewed at two thirds of its life while HTTPS
// requests keep coming, none of them failing.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { Agent, get as httpsGet } from 'node:https'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePorts } from '../support/services/ports.ts'
import { startPebble } from '../support/services/pebble.ts'
import type { Pebble } from '../support/services/pebble.ts'
import { within } from '../support/poll.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let pebble: Pebble
let bal: Running
let up: HttpUpstream
let dir: string
let plain: number
let alpnPort: number
let httpPort: number
let rootFile: string
/** Pebble's certificates live this long: the renewal (at two thirds) happens within the file's run. */
const VALIDITY_S = 30

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

function curl(host: string, port: number): Promise<{ code: number | null; out: string }> {
  return within(
    new Promise((resolve, reject) => {
      const p = spawn('curl', ['-sS', '--max-time', '5', '--cacert', rootFile, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (d: Buffer) => (out += d.toString()))
      p.stderr.on('data', (d: Buffer) => (out += d.toString()))
      p.once('error', reject)
      p.once('close', (code) => resolve({ code, out }))
    }),
    10_000,
    'curl',
  )
}

function serial(port: number, servername: string): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false })
      s.once('error', reject)
      s.once('secureConnect', () => {
        resolve(s.getPeerCertificate().serialNumber)
        s.destroy()
      })
    }),
    5000,
    'handshake',
  )
}

async function acmeView(name: string): Promise<any> {
  return (await api('GET', '/cert')).json.find((c: { name: string }) => c.name === name)
}

beforeAll(async () => {
  up = await httpUpstream((req, res) => res.end(`hello ${req.headers.host}`))
  const to = [{ Target: '127.0.0.1', Port: up.port }]
  // A port found free can be taken by another process (a parallel test's
  // outgoing connection) before the balancer binds it, which the balancer
  // refuses with 409 E_CANNOT_LISTEN: then Pebble (configured with two of
  // the ports) and the balancer start again on fresh ports. Any other answer fails.
  for (let attempt = 1; ; attempt++) {
    ;[plain, alpnPort, httpPort] = (await freePorts(3)) as [number, number, number]
    pebble = await startPebble({ httpPort: plain, tlsPort: alpnPort, validitySeconds: VALIDITY_S })
    dir = tempDir()
    bal = await startBalancer(['--config', join(dir, 'balancer.json'), '--workers', '2', '--acme-directory', pebble.directory, '--acme-ca', pebble.listenerCaFile, '--acme-retry', '1s'])
    const servers = [
      // Where Pebble sends http-01 validation: a plain server (it needs no route of its own for the challenge).
      { address: `:${plain}`, upstreams: to },
      { address: `:${alpnPort}`, tls: { Acme: { Hosts: ['alpn.test'], Challenge: 'tls-alpn-01' } }, upstreams: to },
      { address: `:${httpPort}`, tls: { Acme: { Hosts: ['http.test', 'www.http.test'], Email: 'ops@http.test' } }, upstreams: to },
    ]
    const answers: unknown[] = []
    let taken = false
    for (const server of servers) {
      const r = await api('POST', '/server', server)
      answers.push(r.status === 201 ? 201 : r.json)
      if (r.status === 201) continue
      taken = r.status === 409 && r.json?.code === 'E_CANNOT_LISTEN'
      break
    }
    if (answers.length === 3 && answers.every((c) => c === 201)) break
    if (attempt === 3 || !taken) expect(answers).toEqual([201, 201, 201])
    await bal.stop()
    await pebble.close()
  }
  rootFile = join(dir, 'pebble-root.pem')
  writeFileSync(rootFile, await pebble.root())
}, 60_000)

afterAll(async () => {
  await bal?.stop()
  await up?.close()
  await pebble?.close()
})

describe('ACME with Pebble', () => {
  it("obtains an http-01 certificate for two names that curl accepts with Pebble's root", async () => {
    await until(async () => (await acmeView('http.test'))?.acme?.phase === 'valid', 60_000, 'the http-01 certificate')
    for (const host of ['http.test', 'www.http.test']) {
      const r = await curl(host, httpPort)
      expect(r.out).toBe(`hello ${host}:${httpPort}`)
      expect(r.code).toBe(0)
    }
    const v = await acmeView('http.test')
    expect(v).toMatchObject({ origin: 'acme', names: ['http.test', 'www.http.test'] })
    expect(v.acme).toMatchObject({ phase: 'valid', challenge: 'http-01', failures: 0, lastError: null, renewalBy: 'lifetime' })
    // Renewal at two thirds of the lifetime (Pebble offers no renewal information).
    const span = Date.parse(v.notAfter) - Date.parse(v.notBefore)
    expect(Date.parse(v.acme.nextRenewal)).toBe(Date.parse(v.notBefore) + Math.floor((span * 2) / 3))
    expect(v.issuer).toMatch(/Pebble/)
  }, 90_000)

  it('obtains a tls-alpn-01 certificate (the CA validates on the TLS listener) that curl accepts', async () => {
    await until(async () => (await acmeView('alpn.test'))?.acme?.phase === 'valid', 60_000, 'the tls-alpn-01 certificate')
    const r = await curl('alpn.test', alpnPort)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toBe(`hello alpn.test:${alpnPort}`)
    expect((await acmeView('alpn.test')).acme.challenge).toBe('tls-alpn-01')
  }, 90_000)

  it('keeps the account key and the certificates in the store, and no challenge once done', async () => {
    const shared = join(dir, 'balancer.json.d')
    expect(readdirSync(join(shared, 'acme-account')).filter((n) => !n.startsWith('.'))).toHaveLength(2) // one per contact: none, and ops@http.test
    expect(
      readdirSync(join(shared, 'certs'))
        .filter((n) => !n.startsWith('.'))
        .sort(),
    ).toEqual(['alpn.test', 'http.test'])
    for (const d of ['acme-http-01', 'acme-tls-alpn-01']) expect(existsSync(join(shared, d)) ? readdirSync(join(shared, d)).filter((n) => !n.startsWith('.')) : []).toEqual([])
  })

  it('renews a short-lived certificate at two thirds of its life while requests keep coming: none fails', async () => {
    const before = await serial(httpPort, 'http.test')
    const renewAt = Date.parse((await acmeView('http.test')).acme.nextRenewal)
    let ok = 0
    const failures: string[] = []
    let renewed = false
    const root = readFileSync(rootFile, 'utf8')
    // One keep-alive connection kept across the renewal, and a new connection (a full handshake, verified against
    // Pebble's root) for every other request, so new handshakes meet whichever certificate is current.
    const kept = new Agent({ keepAlive: true, maxSockets: 1 })
    const get = (agent: Agent | false): Promise<string> =>
      new Promise((resolve) => {
        const req = httpsGet({ host: '127.0.0.1', port: httpPort, servername: 'http.test', headers: { host: `http.test:${httpPort}` }, ca: root, agent, timeout: 5000 }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (body += c))
          res.on('end', () => resolve(`${res.statusCode} ${body}`))
        })
        req.on('timeout', () => req.destroy(new Error('timeout')))
        req.on('error', (e) => resolve(e.message))
      })
    const load = (async () => {
      while (!renewed || ok < 10) {
        for (const agent of [kept, false] as const) {
          const r = await get(agent)
          if (r === `200 hello http.test:${httpPort}`) ok++
          else failures.push(r)
        }
        if (!renewed && (await serial(httpPort, 'http.test')) !== before) renewed = true
      }
    })()
    await within(load, Math.max(0, renewAt - Date.now()) + 45_000, 'the renewal under load')
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThanOrEqual(5)
    expect(Date.now()).toBeGreaterThanOrEqual(renewAt)
    kept.destroy()
    await bal.waitLog((l) => l.msg === 'ACME certificate renewed' && l.cert === 'http.test', 10_000)
  }, 120_000)
})
