// Versions and framing across protocols: a response always carries the
// balancer's own HTTP version to the client, whatever version the upstream
// spoke (RFC 9110 §6.2), and a body the upstream delimits by closing its
// connection reaches an HTTP/1.1 client chunked (its connection kept), an
// HTTP/1.0 client delimited by close as before, and an HTTP/2 client as
// DATA ending with END_STREAM.

import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../support/client.ts'
import { header } from '../support/responses.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotWith } from '../support/snapshot.ts'
import { eachHead, rawUpstream } from '../support/upstream.ts'
import type { RawUpstream } from '../support/upstream.ts'

const BIG = 'z'.repeat(300_000)

/** An upstream speaking as the path says: /10-length, /10-close, /11-close, /10-big-close. */
function respond(head: string): { bytes: string; close: boolean } {
  const path = head.split(' ')[1] ?? '/'
  switch (path) {
    case '/10-length':
      return { bytes: 'HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-Up: ten\r\n\r\nhello', close: false }
    case '/10-close':
      return { bytes: 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close', close: true }
    case '/11-close':
      return { bytes: 'HTTP/1.1 201 Created\r\nConnection: close\r\n\r\neleven until close', close: true }
    case '/10-big-close':
      return { bytes: `HTTP/1.0 200 OK\r\n\r\n${BIG}`, close: true }
    default:
      return { bytes: 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n', close: true }
  }
}

let up: RawUpstream
let eng: StartedEngine

beforeAll(async () => {
  up = await rawUpstream(
    eachHead((sock, head) => {
      const r = respond(head)
      sock.write(r.bytes, 'latin1')
      if (!r.close) return undefined
      sock.end()
      return 'stop'
    }),
  )
  eng = await startEngine(snapshotWith([{ h2c: true, routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }], 1))
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

describe("the status line carries the balancer's version", () => {
  it("an HTTP/1.0 upstream's response reaches an HTTP/1.1 client as HTTP/1.1, keep-alive", async () => {
    const c = await RawClient.connect(eng.port)
    try {
      c.write('GET /10-length HTTP/1.1\r\nHost: a\r\n\r\n')
      const r = await c.read()
      expect(r.version).toBe('HTTP/1.1')
      expect([r.status, r.body.toString(), header(r, 'x-up')]).toEqual([200, 'hello', 'ten'])
      c.write('GET /10-length HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.read()).version).toBe('HTTP/1.1')
    } finally {
      c.destroy()
    }
  })
})

describe('a body delimited by the upstream closing', () => {
  for (const [path, status, text] of [
    ['/10-close', 200, 'until close'],
    ['/11-close', 201, 'eleven until close'],
    ['/10-big-close', 200, BIG],
  ] as const) {
    it(`${path}: reaches an HTTP/1.1 client chunked, and the client connection stays open`, async () => {
      const c = await RawClient.connect(eng.port)
      try {
        c.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
        const r = await c.read({ timeoutMs: 10_000 })
        expect(r.version).toBe('HTTP/1.1')
        expect(r.status).toBe(status)
        expect(r.framing).toBe('chunked')
        expect(header(r, 'connection')).toBeUndefined()
        expect(r.body.toString()).toBe(text)
        c.write('GET /10-length HTTP/1.1\r\nHost: a\r\n\r\n')
        expect((await c.read()).body.toString()).toBe('hello')
        expect(c.closed).toBe(false)
      } finally {
        c.destroy()
      }
    })
  }

  it('reaches an HTTP/1.0 client delimited by close, as an HTTP/1.0 client needs', async () => {
    const c = await RawClient.connect(eng.port)
    try {
      c.write('GET /10-close HTTP/1.0\r\nHost: a\r\n\r\n')
      const r = await c.read()
      expect(r.version).toBe('HTTP/1.1')
      expect(r.framing).toBe('close')
      expect(r.body.toString()).toBe('until close')
    } finally {
      c.destroy()
    }
  })

  it('reaches an HTTP/2 client as DATA ending with END_STREAM', async () => {
    const client = http2.connect(`http://127.0.0.1:${eng.port}`)
    client.on('error', () => {})
    try {
      for (const [path, text] of [
        ['/10-close', 'until close'],
        ['/10-big-close', BIG],
      ] as const) {
        const body = await new Promise<string>((resolve, reject) => {
          const req = client.request({ ':path': path }, { endStream: true })
          let b = ''
          req.setEncoding('latin1')
          req.on('data', (d: string) => (b += d))
          req.on('end', () => resolve(b))
          req.on('error', reject)
        })
        expect(body).toBe(text)
      }
    } finally {
      client.close()
    }
  })
})
