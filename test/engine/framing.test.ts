// Message framing across the proxy (RFC 9112 §§6-9): bodiless responses,
// interim responses, pipelining, HTTP/1.0 clients and trailers. Each test
// reads raw bytes so a framing slip shows up as garbage on the connection.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient, parseResponses, rawRequest } from '../support/client.ts'
import { header } from '../support/responses.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { HttpUpstream, RawUpstream } from '../support/upstream.ts'

function handler(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const url = req.url ?? ''
  if (req.method === 'HEAD') {
    res.writeHead(200, { 'content-length': '1234', 'content-type': 'text/plain' })
    res.end()
  } else if (url === '/204') {
    res.writeHead(204, { 'x-kind': 'no-content' })
    res.end()
  } else if (url === '/304') {
    res.writeHead(304, { etag: '"v1"' })
    res.end()
  } else if (url === '/echo') {
    res.end(body)
  } else if (url === '/trailers-in') {
    res.end(`${body.toString()}|${JSON.stringify(req.trailers)}`)
  } else if (url.startsWith('/delay/')) {
    // /delay/<ms>/<tag>: answers later so that pipelined answers would overtake each other if reordered.
    const [, , ms, tag] = url.split('/')
    setTimeout(() => res.end(`${tag ?? ''}:${body.toString()}`), Number(ms))
  } else if (url === '/streamed') {
    res.write('part1-')
    setImmediate(() => res.end('part2'))
  } else if (url === '/trailers') {
    res.writeHead(200, { trailer: 'x-checksum' })
    res.write('abc')
    res.addTrailers({ 'x-checksum': 'c0ffee' })
    res.end('def')
  } else {
    res.end(url)
  }
}

let up: HttpUpstream
let closer: RawUpstream
let eng: StartedEngine
const continued: string[] = []

beforeAll(async () => {
  up = await httpUpstream(handler)
  // Answers Expect: 100-continue itself, so a relayed 100 can only come from here.
  up.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    continued.push(req.url ?? '')
    if (req.url === '/refuse') {
      res.writeHead(413, { 'content-length': '8' })
      res.end('too big\n')
      return
    }
    res.writeContinue()
    up.server.emit('request', req, res)
  })
  // An HTTP/1.1 response delimited by closing the connection (no Content-Length, no chunking).
  closer = await rawUpstream((sock, data, conn) => {
    conn.pending += data.toString('latin1')
    if (conn.pending.includes('\r\n\r\n')) sock.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close')
  })
  eng = await startEngine(
    snapshotFor(
      {
        routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }, { hosts: ['closer.test'], upstreams: [{ host: '127.0.0.1', port: closer.port }] }, { hosts: ['empty.test'], upstreams: [] }],
      },
      1,
    ),
  )
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
  await closer?.close()
})

async function client(): Promise<RawClient> {
  return RawClient.connect(eng.port)
}

describe('bodiless responses keep the connection usable', () => {
  it('HEAD: Content-Length is kept and no body follows', async () => {
    const c = await client()
    try {
      c.write('HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n')
      const r = await c.read({ head: true })
      expect(r.status).toBe(200)
      expect(header(r, 'content-length')).toBe('1234')
      c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
      const n = await c.read()
      expect(n.status).toBe(200)
      expect(n.body.toString()).toBe('/next')
    } finally {
      c.destroy()
    }
  })

  it('HEAD answered by the balancer itself (503, no upstream): the head alone, and the next request works', async () => {
    const c = await client()
    try {
      c.write('HEAD /gone HTTP/1.1\r\nHost: empty.test\r\n\r\n')
      const r = await c.read({ head: true })
      expect(r.status).toBe(503)
      expect(Number(header(r, 'content-length'))).toBeGreaterThan(0)
      c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
      const n = await c.read()
      expect(n.status).toBe(200)
      expect(n.body.toString()).toBe('/next')
    } finally {
      c.destroy()
    }
  })

  it.each([
    ['/204', 204],
    ['/304', 304],
  ])('%s has no body and the next keep-alive request works', async (path, status) => {
    const c = await client()
    try {
      c.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
      const r = await c.read()
      expect(r.status).toBe(status)
      expect(header(r, 'transfer-encoding')).toBeUndefined()
      c.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n')
      const n = await c.read()
      expect(n.status).toBe(200)
      expect(n.body.toString()).toBe('/after')
      expect(c.closed).toBe(false)
    } finally {
      c.destroy()
    }
  })
})

describe('Expect: 100-continue', () => {
  it("relays the upstream's 100 before the final response, then the body goes through", async () => {
    const c = await client()
    try {
      c.write('POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
      const interim = await c.read()
      expect(interim.status).toBe(100)
      expect(continued).toContain('/echo')
      c.write('hello')
      const final = await c.read()
      expect(final.status).toBe(200)
      expect(final.body.toString()).toBe('hello')
    } finally {
      c.destroy()
    }
  })

  it('an upstream that refuses the body: its final status arrives with no 100 before it', async () => {
    const c = await client()
    try {
      c.write('POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
      const r = await c.read()
      expect(r.status).toBe(413)
      expect(r.body.toString()).toBe('too big\n')
      expect(continued).toContain('/refuse')
    } finally {
      c.destroy()
    }
  })
})

describe('pipelining', () => {
  it('three requests in one write are answered in order', async () => {
    const bytes =
      'GET /delay/150/a HTTP/1.1\r\nHost: a\r\n\r\n' + 'POST /delay/60/b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz' + 'GET /delay/0/c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
    const r = await rawRequest(eng.port, bytes, { timeoutMs: 5000 })
    const parsed = parseResponses(r.buf)
    expect(parsed.error).toBeNull()
    expect(parsed.responses.map((x) => `${x.status} ${x.body.toString()}`)).toEqual(['200 a:', '200 b:xyz', '200 c:'])
    expect(r.closed).toBe(true)
  })
})

describe('message boundaries', () => {
  it('a request delivered one byte per segment is served', async () => {
    const c = await client()
    try {
      c.sock.setNoDelay(true)
      const bytes = 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n'
      for (const ch of bytes) await new Promise<void>((r) => c.sock.write(ch, 'latin1', () => r()))
      const r = await c.read()
      expect([r.status, r.body.toString()]).toEqual([200, 'abcde'])
    } finally {
      c.destroy()
    }
  })

  it('chunk extensions and request trailers are accepted, and a request pipelined right after is intact', async () => {
    const bytes =
      'POST /trailers-in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '3;name=value\r\nabc\r\n2;x\r\nde\r\n0\r\nX-Sum: 42\r\n\r\n' +
      'GET /tail HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
    const r = await rawRequest(eng.port, bytes)
    const parsed = parseResponses(r.buf)
    expect(parsed.error).toBeNull()
    const [first, second] = parsed.responses
    expect(first?.status).toBe(200)
    // Forwarding request trailers is optional for a proxy (RFC 9110 §6.5.1); the body must be exact.
    expect(first?.body.toString()).toMatch(/^abcde\|(\{\}|\{"x-sum":"42"\})$/)
    expect(second?.body.toString()).toBe('/tail')
  })

  it('fifty pipelined requests with bodies are answered in order', async () => {
    let bytes = ''
    for (let i = 0; i < 50; i++) bytes += `POST /delay/${i % 3}/r${i} HTTP/1.1\r\nHost: a\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`
    bytes += 'GET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
    const r = await rawRequest(eng.port, bytes, { timeoutMs: 8000 })
    const got = parseResponses(r.buf).responses.map((x) => x.body.toString())
    expect(got).toEqual([...Array.from({ length: 50 }, (_, i) => `r${i}:${i}`), '/end'])
  })

  it('a close-delimited upstream response reaches a keep-alive client framed so the connection stays usable, or with the connection closed', async () => {
    const c = await client()
    try {
      c.write('GET / HTTP/1.1\r\nHost: closer.test\r\n\r\n')
      const r = await c.read()
      expect([r.status, r.body.toString()]).toEqual([200, 'until-close'])
      if (r.framing === 'close') return
      c.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).body.toString()).toBe('/after')
    } finally {
      c.destroy()
    }
  })

  it('Connection: close from the client: the proxy closes after the response', async () => {
    const c = await client()
    c.write('GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect((await c.read()).body.toString()).toBe('/bye')
    expect(await c.whenClosed(3000)).toBe(true)
  })
})

describe('HTTP/1.0 clients', () => {
  it('without keep-alive: the proxy closes after the response', async () => {
    const c = await client()
    try {
      c.write('GET /ten HTTP/1.0\r\nHost: a\r\n\r\n')
      const r = await c.read()
      expect(r.status).toBe(200)
      expect(r.body.toString()).toBe('/ten')
      expect(await c.whenClosed(3000)).toBe(true)
    } finally {
      c.destroy()
    }
  })

  it('a chunked upstream response is never sent chunked to a 1.0 client', async () => {
    const c = await client()
    try {
      c.write('GET /streamed HTTP/1.0\r\nHost: a\r\n\r\n')
      const r = await c.read()
      expect(r.status).toBe(200)
      expect(header(r, 'transfer-encoding')).toBeUndefined()
      expect(r.body.toString()).toBe('part1-part2')
    } finally {
      c.destroy()
    }
  })
})

describe('trailers', () => {
  it('a chunked response with trailers arrives whole, trailers included, and the connection stays usable', async () => {
    const c = await client()
    try {
      c.write('GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n')
      const r = await c.read()
      expect(r.status).toBe(200)
      expect(r.framing).toBe('chunked')
      expect(r.body.toString()).toBe('abcdef')
      expect(r.trailers).toContainEqual(['x-checksum', 'c0ffee'])
      c.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).body.toString()).toBe('/after')
    } finally {
      c.destroy()
    }
  })
})
