// Heads split across reads while other connections' heads are parsed in
// between. The engine parses every HTTP/1.1 request head and every upstream
// response head into one scratch record per process (http1/request.ts,
// http1/relay.ts), so a keep-alive connection holds none while idle; what a
// connection carries from one read to the next is only where its search for
// the end of the head stopped. These cases fail if anything of one
// connection's head leaks into another's.

import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { rawUpstream } from '../support/upstream.ts'
import type { RawUpstream } from '../support/upstream.ts'

let up: RawUpstream
let eng: StartedEngine
/** The upstream connection holding /slow's half-sent response head. */
let slow: Socket | null = null

/** Answers each request head (and its Content-Length body) with the method, path, host and body it got; /slow and /fast as described below. */
function answer(sock: Socket, head: string, body: string): void {
  const [method, path] = head.split(' ')
  const host = /\r\nhost: ([^\r]*)/i.exec(head)?.[1] ?? ''
  if (path === '/slow') {
    // Half a head now; the rest once /fast has been answered.
    sock.write('HTTP/1.1 201 Created\r\nX-Which: sl')
    slow = sock
    return
  }
  if (path === '/fast') {
    sock.write('HTTP/1.1 404 Not Found\r\nX-Which: fast\r\nContent-Length: 4\r\nX-Extra-Field-A: 1\r\nX-Extra-Field-B: 2\r\n\r\nfast')
    const s = slow
    slow = null
    s?.write('ow\r\nContent-Length: 4\r\n\r\nslow')
    return
  }
  const text = `${method} ${path} ${host} [${body}]`
  sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`)
}

beforeAll(async () => {
  up = await rawUpstream((sock, data, conn) => {
    conn.pending += data.toString('latin1')
    for (;;) {
      const end = conn.pending.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = conn.pending.slice(0, end + 4)
      const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0)
      if (conn.pending.length < end + 4 + len) return
      const body = conn.pending.slice(end + 4, end + 4 + len)
      conn.pending = conn.pending.slice(end + 4 + len)
      answer(sock, head, body)
    }
  })
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

describe('heads split across reads, with other connections parsed in between', () => {
  it("a request head cut after its request line keeps its own method, path and host while another client's request is served", async () => {
    const a = await RawClient.connect(eng.port)
    const b = await RawClient.connect(eng.port)
    try {
      a.write('GET /first-half HTTP/1.1\r\nHost: a.example\r\n')
      b.write('POST /other/path?q=1 HTTP/1.1\r\nHost: b.example\r\nContent-Length: 5\r\nX-Padding: 0123456789\r\n\r\nhello')
      const rb = await b.read({ timeoutMs: 5000 })
      expect([rb.status, rb.body.toString()]).toEqual([200, 'POST /other/path?q=1 b.example [hello]'])
      a.write('Accept: */*\r\n\r\n')
      const ra = await a.read({ timeoutMs: 5000 })
      expect([ra.status, ra.body.toString()]).toEqual([200, 'GET /first-half a.example []'])
      // Both connections stay usable for their next request.
      a.write('GET /again HTTP/1.1\r\nHost: a.example\r\n\r\n')
      b.write('GET /again HTTP/1.1\r\nHost: b.example\r\n\r\n')
      expect((await a.read({ timeoutMs: 5000 })).body.toString()).toBe('GET /again a.example []')
      expect((await b.read({ timeoutMs: 5000 })).body.toString()).toBe('GET /again b.example []')
    } finally {
      a.destroy()
      b.destroy()
    }
  })

  it('a response head split across upstream reads keeps its own status, fields and length while another response is relayed', async () => {
    const a = await RawClient.connect(eng.port)
    const b = await RawClient.connect(eng.port)
    try {
      a.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
      // /fast is sent once the upstream holds /slow's half head.
      await until(() => slow !== null, 5000, "the upstream holding /slow's half head")
      b.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n')
      const rb = await b.read({ timeoutMs: 5000 })
      const ra = await a.read({ timeoutMs: 5000 })
      const field = (h: Array<[string, string]>, name: string): string | undefined => h.find(([n]) => n === name)?.[1]
      expect([rb.status, field(rb.headers, 'x-which'), rb.body.toString()]).toEqual([404, 'fast', 'fast'])
      expect([ra.status, field(ra.headers, 'x-which'), field(ra.headers, 'x-extra-field-a'), ra.body.toString()]).toEqual([201, 'slow', undefined, 'slow'])
    } finally {
      a.destroy()
      b.destroy()
    }
  })
})
