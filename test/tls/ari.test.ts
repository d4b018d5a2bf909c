// ACME Renewal Information: the certificate identifier (RFC 9773's own
// example, on a certificate openssl makes with its key identifier and
// serial), and when a renewal is planned from what a directory offers.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { certId, RenewalInfo } from '../../src/tls/acme/ari.ts'

/** A leaf whose issuer's key identifier and serial are RFC 9773's example (section 4.1). */
function exampleCert(serial = '0x87654321'): string {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-ari-'))
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  run(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=ca',
    '-addext',
    'subjectKeyIdentifier=69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  )
  run('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=a.test', '-keyout', 'l.key', '-out', 'l.csr')
  writeFileSync(join(dir, 'ext'), 'authorityKeyIdentifier=keyid\nsubjectAltName=DNS:a.test\n')
  run('x509', '-req', '-in', 'l.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '1', '-extfile', 'ext', '-out', 'l.pem')
  return readFileSync(join(dir, 'l.pem'), 'utf8')
}

describe('the ARI certificate identifier', () => {
  it('is RFC 9773 example: key identifier and serial (with its leading zero octet), base64url', () => {
    expect(certId(exampleCert())).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE')
    // A serial whose first bit is clear has no leading zero.
    expect(certId(exampleCert('0x1234'))).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.EjQ')
  })

  it('is null for a certificate without an authority key identifier (self-signed without one)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'balancer-ari-'))
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=x',
        '-addext',
        'authorityKeyIdentifier=none',
        '-addext',
        'subjectKeyIdentifier=none',
        '-keyout',
        'k',
        '-out',
        'c',
      ],
      { cwd: dir, stdio: 'ignore' },
    )
    expect(certId(readFileSync(join(dir, 'c'), 'utf8'))).toBeNull()
  })
})

describe('planning a renewal', () => {
  let server: Server
  let base: string
  let offer = true
  let window: { start: string; end: string } | null = null
  let asked: string[] = []
  let retryAfter: string | undefined

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/dir') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ newNonce: `${base}/nonce`, ...(offer ? { renewalInfo: `${base}/renewal-info/` } : {}) }))
        return
      }
      if (req.url?.startsWith('/renewal-info/') === true) {
        asked.push(req.url.slice('/renewal-info/'.length))
        if (window === null) {
          res.statusCode = 404
          res.end()
          return
        }
        if (retryAfter !== undefined) res.setHeader('retry-after', retryAfter)
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ suggestedWindow: window }))
        return
      }
      res.statusCode = 404
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const a = server.address()
    base = `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const cert = exampleCert()
  const fallback = Date.parse('2030-01-01T00:00:00Z')
  const now = Date.parse('2029-06-01T00:00:00Z')

  it('picks a time in the window the CA suggests, keeps it while the window stays, and asks again after Retry-After', async () => {
    offer = true
    asked = []
    window = { start: '2029-07-01T00:00:00Z', end: '2029-07-02T00:00:00Z' }
    retryAfter = '3600'
    const ri = new RenewalInfo({ url: `${base}/dir`, ca: null })
    const p = await ri.plan(cert, fallback, now)
    expect(p.source).toBe('ari')
    expect(p.at).toBeGreaterThanOrEqual(Date.parse(window.start))
    expect(p.at).toBeLessThanOrEqual(Date.parse(window.end))
    expect(p.askAgainAt).toBe(now + 3_600_000)
    expect(asked).toEqual(['aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE'])
    // Before Retry-After: not asked again.
    expect(await ri.plan(cert, fallback, now + 60_000)).toEqual(p)
    expect(asked).toHaveLength(1)
    // After it, the same window: the same time.
    const again = await ri.plan(cert, fallback, now + 3_600_001)
    expect(asked).toHaveLength(2)
    expect(again.at).toBe(p.at)
    // The CA moves the window earlier (say, a revocation is coming): renewal moves into it.
    window = { start: '2029-05-01T00:00:00Z', end: '2029-05-01T00:00:01Z' }
    const moved = await ri.plan(cert, fallback, now + 7_200_002)
    expect(moved.at).toBeLessThan(now)
  })

  it('falls back to the lifetime rule when the directory offers no ARI, or the CA has no answer', async () => {
    offer = false
    asked = []
    window = { start: '2029-07-01T00:00:00Z', end: '2029-07-02T00:00:00Z' }
    expect(await new RenewalInfo({ url: `${base}/dir`, ca: null }).plan(cert, fallback, now)).toEqual({ at: fallback, askAgainAt: null, source: 'lifetime' })
    expect(asked).toEqual([])
    offer = true
    window = null
    retryAfter = undefined
    const p = await new RenewalInfo({ url: `${base}/dir`, ca: null }).plan(cert, fallback, now)
    expect(p).toEqual({ at: fallback, askAgainAt: now + 6 * 3_600_000, source: 'lifetime' })
    const down = await new RenewalInfo({ url: 'http://127.0.0.1:1/dir', ca: null }).plan(cert, fallback, now)
    expect(down).toEqual({ at: fallback, askAgainAt: null, source: 'lifetime' })
  })
})
