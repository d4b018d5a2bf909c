// Responses an upstream gets wrong (RFC 9112 §6.3): the proxy answers 502 or
// relays a sanitised message, and never lets stray upstream bytes become the
// answer to somebody else's request (response queue poisoning). Clients that
// vanish mid-exchange must not leave a half-used upstream connection pooled.

import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { RawClient, httpGet, httpRequest, rawRequest } from '../support/client.ts'
import { parseResponses } from '../support/responses.ts'
import { startEngine } from '../support/engine.ts'
import type { EngineTestOptions, StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { answerEachHead, httpUpstream, rawUpstream } from '../support/upstream.ts'
import type { RawHandler } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function behind(handler: RawHandler, opts: EngineTestOptions = {}): Promise<StartedEngine> {
  const up = await rawUpstream(handler)
  cleanup.push(() => up.close())
  const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1), opts)
  cleanup.push(() => e.stop())
  return e
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
const pathOf = (head: string): string => head.split(' ')[1] ?? ''

describe('stray bytes never answer another request', () => {
  it('bytes after a Content-Length body are dropped with the connection', async () => {
    const e = await behind(answerEachHead(`${OK}HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked`))
    for (let i = 0; i < 5; i++) expect((await httpGet(e.port, `/r${i}`)).text).toBe('ok')
  })

  it('a body sent with a 204 is not taken as the next response', async () => {
    const e = await behind(answerEachHead((h) => (pathOf(h) === '/204' ? 'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked' : OK)))
    expect((await httpGet(e.port, '/204')).status).toBe(204)
    for (let i = 0; i < 3; i++) expect((await httpGet(e.port, '/next')).text).toBe('ok')
  })

  it('a body sent in answer to HEAD is not relayed and not reused', async () => {
    const e = await behind(answerEachHead((h) => (h.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked' : OK)))
    const c = await RawClient.connect(e.port)
    try {
      c.write('HEAD / HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read({ head: true })).status).toBe(200)
      c.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n')
      const r = await c.read()
      expect([r.status, r.body.toString()]).toEqual([200, 'ok'])
    } finally {
      c.destroy()
    }
    expect((await httpGet(e.port, '/again')).text).toBe('ok')
  })
})

describe('unusual but valid upstream framing', () => {
  it('a 304 with a Content-Length has no body: the next request on the connection works', async () => {
    const e = await behind(answerEachHead((h) => (pathOf(h) === '/304' ? 'HTTP/1.1 304 Not Modified\r\nETag: "v"\r\nContent-Length: 1234\r\n\r\n' : OK)))
    const c = await RawClient.connect(e.port)
    try {
      c.write('GET /304 HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).status).toBe(304)
      c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).body.toString()).toBe('ok')
    } finally {
      c.destroy()
    }
  })

  it('a HEAD answered with Transfer-Encoding: chunked and no body', async () => {
    const e = await behind(answerEachHead((h) => (h.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' : OK)))
    const c = await RawClient.connect(e.port)
    try {
      c.write('HEAD / HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read({ head: true })).status).toBe(200)
      c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).body.toString()).toBe('ok')
    } finally {
      c.destroy()
    }
  })

  it('an unsolicited 103 Early Hints before the final response: the final response arrives intact', async () => {
    const e = await behind(answerEachHead(`HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n${OK}`))
    const c = await RawClient.connect(e.port)
    try {
      for (let i = 0; i < 2; i++) {
        c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n')
        let r = await c.read()
        while (r.status < 200) r = await c.read()
        expect([r.status, r.body.toString()]).toEqual([200, 'ok'])
      }
    } finally {
      c.destroy()
    }
  })
})

describe('malformed response framing', () => {
  it('two different Content-Length: 502 (RFC 9112 §6.3 ¶5)', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!'))
    expect((await httpGet(e.port, '/')).status).toBe(502)
  })

  it('Content-Length and Transfer-Encoding: 502, or relayed by the chunked framing without the Content-Length', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    const [res, ...more] = parseResponses(r.buf).responses
    expect(more).toEqual([])
    if (res?.status === 200) {
      expect(res.headers.filter(([k]) => k === 'content-length')).toEqual([])
      expect(res.body.toString()).toBe('ok')
    } else {
      expect(res?.status).toBe(502)
    }
  })

  it.each([
    ['a four-digit status', 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok'],
    ['a bare LF status line', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok'],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBroken\r\n\r\nok'],
    ['whitespace before a colon', 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok'],
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok'],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
  ])('%s: 502', async (_name, response) => {
    const e = await behind(answerEachHead(response))
    expect((await httpGet(e.port, '/')).status).toBe(502)
  })

  it('an obs-folded response header: 502, or unfolded to one line', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\r\n b\r\n\r\nok'))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(r.text).not.toMatch(/\r\n[ \t]/)
    const [res] = parseResponses(r.buf).responses
    if (res?.status !== 502) expect(res?.headers).toContainEqual(['x-a', 'a b'])
  })

  it('a 101 to a request that asked for no upgrade does not open a tunnel', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nRAW-TUNNEL-BYTES'))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(r.text).not.toContain('101')
    expect(r.text).not.toContain('RAW-TUNNEL-BYTES')
    expect(parseResponses(r.buf).responses.map((x) => x.status)).toEqual([502])
  })

  it('a bad chunk after the head was relayed: the client connection is cut, never a complete response', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\njunk\r\n0\r\n\r\n'))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    expect(r.closed).toBe(true)
    const parsed = parseResponses(r.buf)
    expect(parsed.responses.filter((x) => x.status === 200)).toEqual([])
    expect(r.text).not.toContain('junk')
  })

  it('an upstream that closes in the middle of a Content-Length body: the client is cut, not left waiting', async () => {
    const e = await behind(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf'))
    const up = await rawUpstream((sock: Socket, data, conn) => {
      conn.pending += data.toString('latin1')
      if (conn.pending.includes('\r\n\r\n')) sock.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf')
    })
    cleanup.push(() => up.close())
    await e.engine.apply(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 2))
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    expect(r.closed).toBe(true)
    expect(parseResponses(r.buf).responses.filter((x) => x.status === 200)).toEqual([])
  })

  // maxHeaderBytes bounds what the proxy holds of any head; the engine applies it to responses too.
  // A small limit keeps the whole over-limit head in one read, which is the case a size check done
  // only on incomplete heads misses; split heads are covered by the same assertion.
  it.each([
    ['in one write', false],
    ['split in two writes', true],
  ])('a response head over maxHeaderBytes, %s: 502', async (_name, split) => {
    const head = `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(6000)}\r\nContent-Length: 2\r\n\r\nok`
    const e = await behind(
      (sock, data, conn) => {
        conn.pending += data.toString('latin1')
        if (!conn.pending.includes('\r\n\r\n')) return
        conn.pending = ''
        if (!split) return void sock.write(head)
        sock.write(head.slice(0, 5000))
        setTimeout(() => sock.write(head.slice(5000)), 50)
      },
      { maxHeaderBytes: 4096 },
    )
    const r = await rawRequest(e.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(parseResponses(r.buf).responses.map((x) => x.status)).toEqual([502])
  })
})

describe('clients that go away', () => {
  it('a client that disconnects mid-response does not leave the rest of that body for the next client', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x62)
    const up = await httpUpstream((req, res) => res.end(req.url === '/big' ? big : 'small'))
    cleanup.push(() => up.close())
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
    cleanup.push(() => e.stop())
    for (let i = 0; i < 3; i++) {
      const c = await RawClient.connect(e.port)
      c.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n')
      await until(() => c.received > 64 * 1024, 3000, 'part of the big body')
      c.destroy()
      expect((await httpGet(e.port, '/small')).text).toBe('small')
    }
  })

  it('a client that disconnects mid-upload: the upstream sees an aborted request, the next one is intact', async () => {
    const up = await httpUpstream((_req, res, body) => res.end(`got ${body.length}`))
    cleanup.push(() => up.close())
    const e = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
    cleanup.push(() => e.stop())
    const c = await RawClient.connect(e.port)
    c.write(`POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(100_000)}`)
    await until(() => up.requests.length === 1, 3000, 'the upload to start upstream')
    c.destroy()
    const r = await httpRequest(e.port, '/next', {}, { method: 'POST', body: 'abc' })
    expect(r.text).toBe('got 3')
    expect(up.requests[0]?.complete).toBe(false)
  })
})
