// body.MaxResponseBytes end to end: a declared Content-Length over the limit
// is answered 502 before the client sees the response; a body that grows
// past it (chunked, close-delimited, HTTP/2 DATA) is cut by a reset of the
// client's connection or stream, never ended as if it were complete.

import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpGet, rawRequest } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotWith } from '../support/snapshot.ts'
import type { RouteSpec } from '../support/snapshot.ts'
import { answerEachHead, httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'
import { rulesOf } from './compile-rules.ts'
import { parseConfig } from '../../src/model/parse.ts'
import { serializeConfig } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'

const MAX = 1000
const piece = (n: number, c = 'x'): string => c.repeat(n)

let up: HttpUpstream
let closer: RawUpstream
let closerSmall: RawUpstream
let edge: StartedEngine
let h2up: http2.Http2Server
let h2port = 0

beforeAll(async () => {
  up = await httpUpstream((req, res) => {
    res.setHeader('content-type', 'text/plain')
    switch ((req.url ?? '').replace(/^\/zip/, '')) {
      case '/declared-big':
        res.end(piece(MAX + 1))
        return
      case '/declared-ok':
        res.end(piece(MAX))
        return
      case '/chunked-big':
        // Three writes: the head and the first part reach the client before the limit is passed.
        res.write(piece(600, 'a'))
        setImmediate(() => {
          res.write(piece(600, 'b'))
          setImmediate(() => res.end(piece(600, 'c')))
        })
        return
      case '/chunked-ok':
        res.write(piece(500))
        setImmediate(() => res.end(piece(500)))
        return
      default:
        res.statusCode = 404
        res.end()
    }
  })
  // HTTP/1.1 answers delimited by the upstream's close.
  const closeDelimited = (n: number) =>
    rawUpstream((sock, data, conn) => {
      answerEachHead('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n')(sock, data, conn)
      sock.write(piece(n))
      sock.end()
    })
  // An HTTP/2 (h2c) upstream: a declared length, or DATA without one.
  h2up = http2.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain')
    if (req.url === '/h2/declared-big') {
      res.setHeader('content-length', String(MAX + 1))
      res.end(piece(MAX + 1))
    } else if (req.url === '/h2/stream-big') {
      res.write(piece(600))
      setImmediate(() => res.end(piece(600)))
    } else res.end(piece(MAX))
  })
  await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r))
  const a = h2up.address()
  h2port = typeof a === 'object' && a !== null ? a.port : 0
  closer = await closeDelimited(MAX + 500)
  closerSmall = await closeDelimited(MAX)
  const u = (port: number) => [{ host: '127.0.0.1', port }]
  const route = (prefix: string, port: number, groups: Record<string, unknown>): RouteSpec => ({ hosts: [], pathPrefix: prefix, upstreams: u(port), rules: rulesOf(groups, prefix) })
  const body = { body: { MaxResponseBytes: MAX } }
  edge = await startEngine(
    snapshotWith(
      [
        {
          h2c: true,
          routes: [
            { hosts: [], pathPrefix: '/h2/', upstreams: [{ host: '127.0.0.1', port: h2port, protocol: 'h2c' }], rules: rulesOf(body, '/h2/') },
            route('/close-big', closer.port, body),
            route('/close-ok', closerSmall.port, body),
            route('/zip', up.port, { ...body, compress: { Types: ['text/*'], MinBytes: 0 } }),
            route('/', up.port, body),
          ],
        },
      ],
      1,
    ),
  )
})
afterAll(async () => {
  await edge?.stop()
  for (const s of [up, closer, closerSmall]) await s?.close()
  await new Promise((r) => h2up?.close(r))
})

/** A raw exchange's outcome: reset by the balancer, or a whole response. */
async function raw(request: string): Promise<{ reset: boolean; text: string }> {
  const r = await rawRequest(edge.port, request, { timeoutMs: 5000 })
  expect(r.timedOut).toBe(false)
  return { reset: r.reset, text: r.text }
}

describe('body.MaxResponseBytes, HTTP/1.1 clients', () => {
  it('a Content-Length over the limit is answered 502; one at the limit passes whole', async () => {
    const big = await httpGet(edge.port, '/declared-big')
    expect(big.status).toBe(502)
    expect(big.text).not.toContain('x')
    const ok = await httpGet(edge.port, '/declared-ok')
    expect(ok.status).toBe(200)
    expect(ok.text).toBe(piece(MAX))
  })

  it('a chunked body that passes the limit resets the connection: no final chunk, never a clean end', async () => {
    const r = await raw('GET /chunked-big HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(r.reset).toBe(true)
    expect(r.text).not.toContain('0\r\n\r\n')
    expect(r.text).not.toContain('b'.repeat(600))
    const ok = await httpGet(edge.port, '/chunked-ok')
    expect(ok.text).toBe(piece(MAX))
  })

  it('a close-delimited body past the limit resets the connection, for HTTP/1.1 (chunked) and HTTP/1.0 (close-delimited) clients', async () => {
    for (const version of ['1.1', '1.0']) {
      const r = await raw(`GET /close-big HTTP/${version}\r\nhost: x\r\n\r\n`)
      expect(r.reset, version).toBe(true)
      expect(r.text, version).not.toContain(piece(MAX + 1))
    }
    // Within the limit: whole, and ended normally.
    const ok = await rawRequest(edge.port, 'GET /close-ok HTTP/1.0\r\nhost: x\r\n\r\n', { timeoutMs: 5000 })
    expect(ok.reset).toBe(false)
    expect(ok.text.endsWith(`\r\n\r\n${piece(MAX)}`)).toBe(true)
  })

  it('from an HTTP/2 upstream: 502 for its content-length over the limit, a reset when its DATA passes it', async () => {
    expect((await httpGet(edge.port, '/h2/declared-big')).status).toBe(502)
    const big = await raw('GET /h2/stream-big HTTP/1.1\r\nhost: x\r\n\r\n')
    expect(big.reset).toBe(true)
    expect(big.text).not.toContain('0\r\n\r\n')
    const ok = await httpGet(edge.port, '/h2/ok')
    expect(ok.text).toBe(piece(MAX))
  })

  it('a compressed response is held to the limit by what the upstream sent', async () => {
    const r = await raw('GET /zip/chunked-big HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\n\r\n')
    expect(r.reset).toBe(true)
    const ok = await rawRequest(edge.port, 'GET /zip/chunked-ok HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n', { timeoutMs: 5000 })
    expect(ok.reset).toBe(false)
    expect(ok.text).toContain('content-encoding: gzip')
  })
})

describe('body.MaxResponseBytes, HTTP/2 clients', () => {
  function h2(path: string): Promise<{ status: number; body: string; error: string }> {
    return new Promise((resolve) => {
      const client = http2.connect(`http://127.0.0.1:${edge.port}`)
      client.on('error', () => {})
      const req = client.request({ ':path': path })
      let status = 0
      let body = ''
      req.on('response', (h) => {
        status = Number(h[':status'])
      })
      req.setEncoding('latin1')
      req.on('data', (d: string) => {
        body += d
      })
      req.on('error', (e: NodeJS.ErrnoException) => {
        client.close()
        resolve({ status, body, error: e.code ?? e.message })
      })
      req.on('end', () => {
        client.close()
        resolve({ status, body, error: '' })
      })
    })
  }

  it('502 for a declared length over the limit; the stream is reset when a body passes it', async () => {
    expect((await h2('/declared-big')).status).toBe(502)
    const ok = await h2('/declared-ok')
    expect(ok.status).toBe(200)
    expect(ok.body).toBe(piece(MAX))
    const big = await h2('/chunked-big')
    expect(big.error).toBe('ERR_HTTP2_STREAM_ERROR')
    expect(big.body.length).toBeLessThanOrEqual(MAX)
    const closeBig = await h2('/close-big')
    expect(closeBig.error).toBe('ERR_HTTP2_STREAM_ERROR')
    const closeOk = await h2('/close-ok')
    expect(closeOk.error).toBe('')
    expect(closeOk.body).toBe(piece(MAX))
  })

  it('the same from an HTTP/2 upstream: 502 for its content-length, a reset when its DATA passes the limit', async () => {
    expect((await h2('/h2/declared-big')).status).toBe(502)
    const big = await h2('/h2/stream-big')
    expect(big.error).toBe('ERR_HTTP2_STREAM_ERROR')
    const ok = await h2('/h2/ok')
    expect(ok.error).toBe('')
    expect(ok.body).toBe(piece(MAX))
  })
})

describe('body.MaxResponseBytes in the configuration', () => {
  const server = (body: unknown) => ({ servers: [{ address: ':8080', upstreams: [{ Target: '10.0.0.1', Port: 80 }], body }] })

  it('is read from numbers and digit strings, and written back with the whole group', () => {
    const cfg = parseConfig(server({ maxresponsebytes: '2048' }))
    expect(cfg.servers[0]?.body).toEqual({ MaxRequestBytes: 0, MaxResponseBytes: 2048 })
    expect(JSON.parse(serializeConfig(cfg)).servers[0].body).toEqual({ MaxRequestBytes: 0, MaxResponseBytes: 2048 })
  })

  it('a bad value is refused with its path', () => {
    let problems: Array<{ path: string; message: string }> = []
    try {
      parseConfig(server({ MaxResponseBytes: '10MB' }))
    } catch (e) {
      if (!(e instanceof BalancerError)) throw e
      problems = e.problems
    }
    expect(problems).toEqual([{ path: 'servers[0].body.MaxResponseBytes', message: 'must be an integer 0-1099511627776, got "10MB"' }])
  })
})
