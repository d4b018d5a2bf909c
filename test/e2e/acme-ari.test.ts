// ACME Renewal Information where the CA offers it. Debian's Pebble has no
// renewalInfo endpoint, so a front serves Pebble's directory with one added
// (everything else goes to Pebble itself): it answers the first
// certificate's identifier with a window that is already open (as a CA does
// when a certificate is to be revoked), the next with one ten days ahead.
// The balancer renews the first at once, and plans the second in its
// window, as GET /cert shows. The identifiers it asked for are checked
// against openssl's reading of the certificates.

import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { get as httpsGet } from 'node:https'
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
let front: Server
let frontUrl: string
let bal: Running
let up: HttpUpstream
let plain: number
let tls: number
const asked: string[] = []
const DAY = 86_400_000
let later: { start: string; end: string }

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

/** The certificate the balancer serves for `name` (DER). */
function served(name: string): Promise<Buffer> {
  return within(
    new Promise((resolve, reject) => {
      const s = tlsConnect({ port: tls, host: '127.0.0.1', servername: name, rejectUnauthorized: false })
      s.once('error', reject)
      s.once('secureConnect', () => {
        resolve(s.getPeerCertificate().raw)
        s.destroy()
      })
    }),
    5000,
    'handshake',
  )
}

/** openssl's reading of a certificate's ARI identifier: authority key id and serial, base64url. */
function opensslCertId(der: Buffer): string {
  const file = join(tempDir(), 'c.der')
  writeFileSync(file, der)
  const text = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', file, '-noout', '-serial', '-ext', 'authorityKeyIdentifier'], { encoding: 'utf8' })
  const serialHex = /serial=([0-9A-F]+)/i.exec(text)?.[1] ?? ''
  const akiHex = /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/i.exec(text)?.[1]?.replace(/:/g, '') ?? ''
  let s = serialHex.length % 2 === 1 ? `0${serialHex}` : serialHex
  if (/^[89a-f]/i.test(s)) s = `00${s}`
  return `${Buffer.from(akiHex, 'hex').toString('base64url')}.${Buffer.from(s, 'hex').toString('base64url')}`
}

function pebbleDirectory(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    httpsGet(pebble.directory, { ca: readFileSync(pebble.listenerCaFile, 'utf8') }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>))
    }).on('error', reject)
  })
}

beforeAll(async () => {
  ;[plain, tls] = (await freePorts(2)) as [number, number]
  pebble = await startPebble({ httpPort: plain, tlsPort: tls })
  const now = Date.now()
  later = { start: new Date(now + 10 * DAY).toISOString(), end: new Date(now + 10 * DAY + 3_600_000).toISOString() }
  front = createServer((req, res) => {
    void (async () => {
      if (req.url === '/dir') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ ...(await pebbleDirectory()), renewalInfo: `${frontUrl}/renewal-info` }))
        return
      }
      const m = /^\/renewal-info\/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(req.url ?? '')
      if (m === null) {
        res.statusCode = 404
        res.end()
        return
      }
      const id = m[1] as string
      if (!asked.includes(id)) asked.push(id)
      // The first certificate: a window open since an hour ago (renew now); any later one: ten days ahead.
      const window = asked.indexOf(id) === 0 ? { start: new Date(Date.now() - 3_600_000).toISOString(), end: new Date(Date.now() - 3_599_000).toISOString() } : later
      res.setHeader('content-type', 'application/json')
      res.setHeader('retry-after', '3600')
      res.end(JSON.stringify({ suggestedWindow: window }))
    })().catch(() => {
      res.statusCode = 500
      res.end()
    })
  })
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
  const a = front.address()
  frontUrl = `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`
  up = await httpUpstream((req, res) => res.end(`hello ${req.headers.host}`))
  bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--acme-directory', `${frontUrl}/dir`, '--acme-ca', pebble.listenerCaFile, '--acme-retry', '1s'])
}, 60_000)

afterAll(async () => {
  await bal?.stop()
  await up?.close()
  await new Promise<void>((r) => (front === undefined ? r() : front.close(() => r())))
  await pebble?.close()
})

describe('ACME Renewal Information', () => {
  it('renews when the CA says so, and plans the next renewal in the window it suggests', async () => {
    const to = [{ Target: '127.0.0.1', Port: up.port }]
    expect((await api('POST', '/server', { address: `:${plain}`, upstreams: to })).status).toBe(201)
    expect((await api('POST', '/server', { address: `:${tls}`, tls: { Acme: { Hosts: ['ari.test'] } }, upstreams: to })).status).toBe(201)
    const first = await bal.waitLog((l) => l.msg === 'ACME certificate issued', 60_000)
    // Pebble's certificates live for years: only the CA's window makes this renewal come now.
    await bal.waitLog((l) => l.msg === 'ACME certificate renewed', 60_000)
    await until(
      async () => {
        const c = ((await api('GET', '/cert')).json as Array<{ name: string; acme?: { renewalBy: string | null; nextRenewal: string | null } }>).find((x) => x.name === 'ari.test')
        return c?.acme?.renewalBy === 'ari' && c.acme.nextRenewal !== null && c.acme.nextRenewal >= later.start
      },
      30_000,
      'the renewal planned in the suggested window',
    )
    const c = ((await api('GET', '/cert')).json as Array<{ name: string; notAfter: string; acme: { nextRenewal: string; renewalBy: string; phase: string } }>).find((x) => x.name === 'ari.test')
    expect(c?.acme.phase).toBe('valid')
    expect(c?.acme.renewalBy).toBe('ari')
    expect(Date.parse(c?.acme.nextRenewal ?? '')).toBeGreaterThanOrEqual(Date.parse(later.start))
    expect(Date.parse(c?.acme.nextRenewal ?? '')).toBeLessThanOrEqual(Date.parse(later.end))
    // Two thirds of the lifetime would have been years away.
    expect(Date.parse(String(first.notAfter))).toBeGreaterThan(Date.now() + 300 * DAY)
    // What it asked the CA about: the first certificate, then the one it serves now, named as RFC 9773 says.
    expect(asked).toHaveLength(2)
    expect(asked[1]).toBe(opensslCertId(await served('ari.test')))
  }, 120_000)
})
