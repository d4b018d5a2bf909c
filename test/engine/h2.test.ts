// HTTP/2 to clients: h2c with prior knowledge on a plain listener that
// allows it, h2 by ALPN on TLS listeners, streams routed and relayed to
// HTTP/1.1 upstreams exactly as HTTP/1.1 requests are. Node's http2 client,
// Debian's curl (--http2), nghttp and h2load against real upstreams.

import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import type { ClientHttp2Session, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestCa, certEntry } from '../support/certs.ts'
import type { IssuedCert } from '../support/certs.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { listenKey, snapshotWith } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { until, within } from '../support/poll.ts'
import { E, F, H2Peer, T, block, frame } from '../support/h2peer.ts'

const H2C = listenKey('127.0.0.1', 0)
const TLS = listenKey('127.0.0.2', 0)
const TLS_H1 = listenKey('127.0.0.3', 0)
const PLAIN = listenKey('127.0.0.4', 0)
const DEAD = listenKey('127.0.0.5', 0)
const NARROW = listenKey('127.0.0.6', 0)

let ca: TestCa
let cert: IssuedCert
let up: HttpUpstream
let other: HttpUpstream
let eng: StartedEngine
const lines: string[] = []
let deadPort = 0

/** Deterministic bytes of a given size: what each body test sends and expects back. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    b[i] = x >> 16
  }
  return b
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  ca = new TestCa()
  cert = ca.issue(['localhost', '127.0.0.2', '127.0.0.3'])
  up = await httpUpstream((req, res, body) => {
    const u = new URL(req.url ?? '/', 'http://x')
    res.setHeader('x-seen', JSON.stringify({ method: req.method, url: req.url, version: req.httpVersion, headers: req.headers, bodySha: sha(body), bodyLen: body.length }))
    res.setHeader('x-upstream', 'main')
    res.setHeader('Connection', 'keep-alive, X-Hop')
    res.setHeader('X-Hop', 'dropped')
    const size = Number(u.searchParams.get('size') ?? '-1')
    if (size >= 0) {
      const data = bytes(size, Number(u.searchParams.get('seed') ?? '1'))
      if (u.searchParams.get('chunked') === '1') {
        // Written in pieces without a length: node:http sends it chunked.
        for (let off = 0; off < data.length; off += 65536) res.write(data.subarray(off, off + 65536))
        res.end()
      } else {
        res.setHeader('content-length', String(data.length))
        res.end(data)
      }
      return
    }
    if (u.pathname === '/echo') {
      res.end(body)
      return
    }
    res.end(`main ${req.url}`)
  })
  other = await httpUpstream((req, res) => res.end(`other ${req.url}`))
  // A port nothing listens on: bound, then closed.
  const tmp = await httpUpstream()
  deadPort = tmp.port
  await tmp.close()
  const to = [{ host: '127.0.0.1', port: up.port }]
  eng = await startEngine(
    snapshotWith(
      [
        {
          host: '127.0.0.1',
          h2c: true,
          routes: [{ hosts: ['other.test'], upstreams: [{ host: '127.0.0.1', port: other.port }] }, { upstreams: to }],
        },
        { host: '127.0.0.6', h2c: true, routes: [{ hosts: ['only.test'], pathPrefix: '/only', upstreams: to }] },
        { host: '127.0.0.2', tls: [cert], routes: [{ schemes: ['https'], upstreams: to }] },
        { host: '127.0.0.3', tls: [cert], alpn: ['http/1.1'], routes: [{ upstreams: to }] },
        { host: '127.0.0.4', routes: [{ upstreams: to }] },
        {
          host: '127.0.0.5',
          h2c: true,
          routes: [
            {
              hosts: ['failover.test'],
              upstreams: [
                { host: '127.0.0.1', port: deadPort, priority: 1 },
                { host: '127.0.0.1', port: up.port, priority: 2 },
              ],
            },
            { upstreams: [{ host: '127.0.0.1', port: deadPort }] },
          ],
        },
      ],
      1,
    ),
    { accessLog: { sample: 1, write: (l: string) => lines.push(l) } },
    [certEntry(cert)],
  )
})

afterAll(async () => {
  await eng?.stop()
  await up?.close()
  await other?.close()
  ca?.remove()
})

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

function request(client: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | Buffer[]): Promise<Reply> {
  return within(
    new Promise((resolve, reject) => {
      const end = body === undefined
      const req = client.request(headers, { endStream: end })
      const chunks: Buffer[] = []
      let head: IncomingHttpHeaders = {}
      req.on('response', (h) => (head = h))
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }))
      req.on('error', reject)
      if (!end) {
        const parts = Array.isArray(body) ? body : [body]
        for (const p of parts) req.write(p)
        req.end()
      }
    }),
    30_000,
    `h2 ${String(headers[':path'])}`,
  )
}

function seen(r: Reply): { method: string; url: string; version: string; headers: Record<string, string>; bodySha: string; bodyLen: number } {
  return JSON.parse(String(r.headers['x-seen']))
}

let h2c: ClientHttp2Session
beforeAll(() => {
  h2c = http2.connect(`http://127.0.0.1:${eng.portOf(H2C)}`)
  h2c.on('error', () => {})
})
afterAll(() => h2c?.close())

describe('h2c with prior knowledge', () => {
  it('relays a GET to the HTTP/1.1 upstream: :authority becomes Host, forwarding headers added, connection-specific fields dropped', async () => {
    const r = await request(h2c, {
      ':path': '/a?q=1',
      ':authority': 'shop.test:8080',
      'x-forwarded-for': '203.0.113.9',
      'x-real-ip': '203.0.113.9',
      forwarded: 'for=203.0.113.9',
      'x-forwarded-proto': 'https',
      cookie: 'a=1',
      'x-custom': 'v',
    })
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('main /a?q=1')
    const s = seen(r)
    expect(s.version).toBe('1.1')
    expect(s.url).toBe('/a?q=1')
    expect(s.headers.host).toBe('shop.test:8080')
    // Not a trusted proxy: its address fields are replaced by what the balancer saw, as for HTTP/1.1.
    expect(s.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(s.headers['x-real-ip']).toBe('127.0.0.1')
    expect(s.headers.forwarded).toBe('for=127.0.0.1;proto=http;host="shop.test:8080"')
    expect(s.headers['x-forwarded-proto']).toBe('http')
    expect(s.headers['x-forwarded-host']).toBe('shop.test:8080')
    expect(s.headers['x-custom']).toBe('v')
    expect(s.headers['x-request-id']).toMatch(/^[0-9a-f]{12}-\d+$/)
    expect(r.headers['x-request-id']).toBe(s.headers['x-request-id'])
    // The upstream's Connection and the field it names are HTTP/1.1 hop-by-hop fields.
    expect(r.headers['x-hop']).toBeUndefined()
    expect(r.headers.connection).toBeUndefined()
    expect(r.headers['x-upstream']).toBe('main')
  })

  it('joins cookies split across fields with "; " (RFC 9113 §8.2.3) and keeps a valid client request id', async () => {
    const req = h2c.request({ ':path': '/c', cookie: ['a=1', 'b=2'], 'x-request-id': 'trace-42' }, { endStream: true })
    const r = await new Promise<IncomingHttpHeaders>((resolve) => req.on('response', resolve))
    req.resume()
    const s = JSON.parse(String(r['x-seen']))
    expect(s.headers.cookie).toBe('a=1; b=2')
    expect(s.headers['x-request-id']).toBe('trace-42')
  })

  it('routes by :authority and path like HTTP/1.1: another route, and 404 where none matches', async () => {
    expect((await request(h2c, { ':path': '/x', ':authority': 'OTHER.test:9' })).body.toString()).toBe('other /x')
    const c = http2.connect(`http://127.0.0.6:${eng.portOf(NARROW)}`)
    c.on('error', () => {})
    expect((await request(c, { ':path': '/only/x?y', ':authority': 'only.test' })).body.toString()).toBe('main /only/x?y')
    const none = await request(c, { ':path': '/elsewhere', ':authority': 'only.test' })
    c.close()
    expect(none.status).toBe(404)
    expect(none.body.toString()).toBe('404 Not Found\n')
  })

  it('carries many concurrent streams on one connection, each its own answer', async () => {
    const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => request(h2c, { ':path': `/n${i}` })))
    rs.forEach((r, i) => expect(r.body.toString()).toBe(`main /n${i}`))
  })

  for (const size of [0, 1024 * 1024, 10 * 1024 * 1024]) {
    for (const chunked of [false, true]) {
      it(`downloads ${size} bytes byte-identical (${chunked ? 'chunked' : 'content-length'} from the upstream)`, async () => {
        const r = await request(h2c, { ':path': `/d?size=${size}&seed=${size + 7}&chunked=${chunked ? 1 : 0}` })
        expect(r.status).toBe(200)
        expect(r.body.length).toBe(size)
        expect(sha(r.body)).toBe(sha(bytes(size, size + 7)))
        if (!chunked) expect(r.headers['content-length']).toBe(String(size))
        else expect(r.headers['transfer-encoding']).toBeUndefined()
      })
      it(`uploads ${size} bytes byte-identical (${chunked ? 'no content-length: chunked upstream' : 'content-length'})`, async () => {
        const data = bytes(size, size + 3)
        const parts = []
        for (let off = 0; off < data.length; off += 100_000) parts.push(data.subarray(off, off + 100_000))
        const headers: OutgoingHttpHeaders = { ':path': '/echo', ':method': 'POST' }
        if (!chunked) headers['content-length'] = String(size)
        const r = await request(h2c, headers, parts.length === 0 ? Buffer.alloc(0) : parts)
        expect(r.status).toBe(200)
        const s = seen(r)
        expect(s.bodyLen).toBe(size)
        expect(s.bodySha).toBe(sha(data))
        if (chunked && size > 0) expect(s.headers['transfer-encoding']).toBe('chunked')
        if (!chunked) expect(s.headers['content-length']).toBe(String(size))
        expect(sha(r.body)).toBe(sha(data))
      })
    }
  }

  it('refuses malformed requests with RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.1.1); the connection carries on', async () => {
    const p = await H2Peer.open(eng.portOf(H2C))
    const before = up.requests.length
    p.write(p.headers(1, '/bad', { extra: [['connection', 'close']] }))
    p.write(p.headers(3, '/bad', { extra: [['X-Upper', 'v']] }))
    p.write(p.headers(5, '/bad', { extra: [['x-nl', 'a\r\nb']] }))
    p.write(p.headers(7, '/bad', { extra: [['te', 'gzip']] }))
    p.write(
      frame(
        T.HEADERS,
        F.END_HEADERS | F.END_STREAM,
        9,
        block([
          [':method', 'GET'],
          [':path', '/bad'],
        ]),
      ),
    )
    p.write(
      frame(
        T.HEADERS,
        F.END_HEADERS | F.END_STREAM,
        11,
        block([
          [':method', 'GET'],
          [':scheme', 'http'],
          [':path', '/bad'],
          [':authority', 'a.test'],
          ['host', 'b.test'],
        ]),
      ),
    )
    for (const id of [1, 3, 5, 7, 9, 11]) {
      const f = await p.waitFor((x) => x.type === T.RST_STREAM && x.stream === id)
      expect(f.payload.readUInt32BE(0)).toBe(E.PROTOCOL_ERROR)
    }
    p.write(p.headers(13, '/good'))
    const h = await p.waitFor((x) => x.type === T.HEADERS && x.stream === 13)
    expect(h.payload[0]).toBe(0x88) // :status 200, indexed
    p.close()
    expect(up.requests.slice(before).filter((r) => r.url === '/bad')).toEqual([])
  })
})

describe('--trusted-proxies', () => {
  it("appends to a trusted proxy's X-Forwarded-For and Forwarded and keeps its X-Real-IP, as for HTTP/1.1", async () => {
    const local = await startEngine(snapshotWith([{ h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1), { trustedProxies: ['127.0.0.0/8'] })
    const c = http2.connect(`http://127.0.0.1:${local.port}`)
    c.on('error', () => {})
    try {
      const r = await request(c, { ':path': '/t', ':authority': 'a.test', 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9', forwarded: 'for=203.0.113.9' })
      const s = seen(r)
      expect(s.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
      expect(s.headers['x-real-ip']).toBe('203.0.113.9')
      expect(s.headers.forwarded).toBe('for=203.0.113.9, for=127.0.0.1;proto=http;host="a.test"')
    } finally {
      c.close()
      await local.stop()
    }
  })
})

describe('failover', () => {
  let c: ClientHttp2Session
  beforeAll(() => {
    c = http2.connect(`http://127.0.0.5:${eng.portOf(DEAD)}`)
    c.on('error', () => {})
  })
  afterAll(() => c?.close())

  it('moves a stream whose upstream refuses to the next priority, as HTTP/1.1 does', async () => {
    const r = await request(c, { ':path': '/f', ':authority': 'failover.test' })
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe('main /f')
  })

  it('answers 503 with Retry-After when no upstream can take it', async () => {
    const r = await request(c, { ':path': '/none' })
    expect(r.status).toBe(503)
    expect(r.headers['retry-after']).toBe('1')
  })
})

function run(cmd: string, args: string[]): Promise<{ out: string; code: number }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ out: `${stdout}${stderr}`, code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1 })
    })
  })
}

describe('h2 over TLS (ALPN)', () => {
  it('offers h2 first: Node, curl --http2 and nghttp get HTTP/2, the upstream sees https', async () => {
    const c = http2.connect(`https://localhost:${eng.portOf(TLS)}`, { ca: ca.caPem, host: '127.0.0.2', servername: 'localhost' } as http2.SecureClientSessionOptions)
    c.on('error', () => {})
    const r = await request(c, { ':path': '/tls' })
    c.close()
    expect(r.status).toBe(200)
    expect(seen(r).headers['x-forwarded-proto']).toBe('https')

    const url = `https://localhost:${eng.portOf(TLS)}/curl`
    const curl = await run('curl', ['-sS', '-v', '--http2', '--cacert', ca.caFile, '--resolve', `localhost:${eng.portOf(TLS)}:127.0.0.2`, url])
    expect(curl.code).toBe(0)
    expect(curl.out).toContain('ALPN: server accepted h2')
    expect(curl.out).toContain('< HTTP/2 200')
    expect(curl.out).toContain('main /curl')

    const ng = await run('nghttp', ['-v', '--no-verify-peer' as string].filter((a) => a !== '--no-verify-peer').concat([`https://127.0.0.2:${eng.portOf(TLS)}/ng`]))
    expect(ng.out).toContain('The negotiated protocol: h2')
    expect(ng.out).toMatch(/recv \(stream_id=\d+\) :status: 200/)
    expect(ng.out).toContain('main /ng')
  })

  it('h2load: 2,000 requests on 4 connections x 10 streams all succeed', async () => {
    const r = await run('h2load', ['-n', '2000', '-c', '4', '-m', '10', `https://127.0.0.2:${eng.portOf(TLS)}/load`])
    expect(r.out).toContain('Application protocol: h2')
    expect(r.out).toMatch(/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed/)
  })

  it('a listener whose Alpn lists only http/1.1 negotiates HTTP/1.1', async () => {
    const proto = await new Promise<string | false | null>((resolve, reject) => {
      const s = tlsConnect({ port: eng.portOf(TLS_H1), host: '127.0.0.3', servername: 'localhost', ca: ca.caPem, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(s.alpnProtocol)
        s.destroy()
      })
      s.once('error', reject)
    })
    expect(proto).toBe('http/1.1')
  })
})

describe('a plain listener without h2c', () => {
  it('answers the HTTP/2 preface as an HTTP/1.1 request of an unknown version (505)', async () => {
    const text = await new Promise<string>((resolve) => {
      const s = netConnect(eng.portOf(PLAIN), '127.0.0.4', () => s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))
      let out = ''
      s.on('data', (d) => (out += d.toString('latin1')))
      s.on('close', () => resolve(out))
      s.on('error', () => resolve(out))
    })
    expect(text.startsWith('HTTP/1.1 505 ')).toBe(true)
  })
})

describe('meters and access log', () => {
  it('counts connections and requests per protocol (GET /status engine figures)', async () => {
    const before = eng.engine.stats().requests ?? { http1: 0, h2: 0 }
    await request(h2c, { ':path': '/count' })
    const st = eng.engine.stats()
    expect((st.requests?.h2 ?? 0) - before.h2).toBeGreaterThanOrEqual(1)
    expect(st.requests?.http1).toBe(before.http1)
    const l = st.listeners.find((x) => x.key === H2C)
    expect(l?.protocols?.h2).toBeGreaterThanOrEqual(1)
    expect(l?.protocols?.http1).toBe(0)
  })

  it('writes one access log line per stream with protocol HTTP/2 and counts it in its route', async () => {
    lines.length = 0
    const r = await request(h2c, { ':path': '/logged?x=1', ':authority': 'log.test', 'x-request-id': 'log-1' })
    expect(r.status).toBe(200)
    await until(() => lines.some((l) => l.includes('"log-1"')), 5000, 'access log line')
    const line = JSON.parse(lines.find((l) => l.includes('"log-1"')) as string)
    expect(line).toMatchObject({ kind: 'http', method: 'GET', host: 'log.test', path: '/logged?x=1', protocol: 'HTTP/2', status: 200, route: 'r1', upstream: up.key, requestId: 'log-1' })
    expect(line.bytesOut).toBeGreaterThan(0)
    const t = eng.engine.traffic().routes.find((x) => x.id === `${H2C}#r1`)
    expect(t?.upstreams.find((u) => u.key === up.key)?.codes[1]).toBeGreaterThan(0)
  })
})
