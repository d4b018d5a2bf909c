// Heads parsed in one walk (http1/parse.ts): a request head that is whole
// in one read is found and checked in a single pass, and anything that pass
// does not take (a head cut short, a rule broken, a limit passed) goes the
// careful way; a response head is found and checked in the same pass, as
// far as the upstream's bytes go. So a head gets the same answer whether it
// comes whole or a byte at a time, and a response head that breaks a rule
// is answered 502 without waiting for the rest of it.

import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest, statusCodes } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { eachHead, rawUpstream } from '../support/upstream.ts'
import type { RawUpstream } from '../support/upstream.ts'

const MAX_HEAD = 1024
let up: RawUpstream
let eng: StartedEngine
/** What the upstream answers, by request path; the default is a plain 200. */
const answers = new Map<string, (sock: Socket) => Promise<void> | void>()

beforeAll(async () => {
  up = await rawUpstream(
    eachHead((sock, head) => {
      const answer = answers.get(head.split(' ')[1] ?? '')
      if (answer !== undefined) void answer(sock)
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      return undefined
    }),
  )
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1), { maxHeaderBytes: MAX_HEAD })
})

afterAll(async () => {
  await eng.stop()
  await up.close()
})

/** Writes `bytes` one byte per write (each waiting for the last), then reads until the proxy closes. */
function byteByByte(bytes: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port: eng.port, host: '127.0.0.1' })
    sock.setNoDelay(true)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => sock.destroy(), 5000)
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('error', () => {}) // a reset after a refusal still leaves what was read
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    sock.on('connect', () => {
      void (async () => {
        for (let i = 0; i < bytes.length && !sock.destroyed; i++) {
          await new Promise<void>((r) => sock.write(Buffer.from(bytes[i] as string, 'latin1'), () => r()))
        }
      })().catch(reject)
    })
  })
}

const GET = 'GET / HTTP/1.1\r\n'
const POST = 'POST / HTTP/1.1\r\n'

describe('request heads: the same answer whole and byte by byte', () => {
  it.each([
    ['a valid head', `${GET}Host: a\r\nConnection: close\r\n\r\n`, 200],
    ['obs-fold', `${GET}Host: a\r\nX-Foo: a\r\n b\r\nConnection: close\r\n\r\n`, 400],
    ['two Host fields', `${GET}Host: a\r\nHost: b\r\nConnection: close\r\n\r\n`, 400],
    ['no Host in HTTP/1.1', `${GET}Connection: close\r\n\r\n`, 400],
    ['Content-Length and Transfer-Encoding', `${POST}Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`, 400],
    ['a transfer coding other than chunked', `${POST}Host: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`, 501],
    ['a bare LF ending a field line', `${GET}Host: a\nConnection: close\r\n\r\n`, 400],
    ['a NUL in a field value', `${GET}Host: a\r\nX-Foo: a\0b\r\nConnection: close\r\n\r\n`, 400],
    ['a head over the limit', `${GET}Host: a\r\nX-Big: ${'b'.repeat(MAX_HEAD)}\r\nConnection: close\r\n\r\n`, 431],
    ['a head over the limit that also breaks a rule', `${GET}Host: a\r\nX Bad: 1\r\nX-Big: ${'b'.repeat(MAX_HEAD)}\r\nConnection: close\r\n\r\n`, 431],
    ['a request line over the limit', `GET /${'p'.repeat(MAX_HEAD)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, 414],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n', 505],
  ])('%s', async (_name, bytes, status) => {
    const whole = await rawRequest(eng.port, bytes)
    expect(statusCodes(whole.buf)).toEqual([status])
    // A head over the limit is refused as it grows, before it is all sent: only what was answered counts.
    expect(statusCodes(await byteByByte(bytes))).toEqual([status])
  })

  it('latin1 bytes in field values reach the upstream byte for byte, whole and byte by byte', async () => {
    const line = 'X-Latin: caf\xe9 \xff\x80 na\xefve'
    for (const send of [(b: string) => rawRequest(eng.port, b).then((r) => r.buf), byteByByte]) {
      const before = up.text().length
      const got = await send(`GET /latin HTTP/1.1\r\nHost: a\r\n${line}\r\nConnection: close\r\n\r\n`)
      expect(statusCodes(got)).toEqual([200])
      await until(() => up.text().length > before, 3000, 'the request at the upstream')
      expect(up.text().slice(before)).toContain(`\r\n${line}\r\n`)
    }
  })
})

describe('response heads: found and checked in one walk', () => {
  it.each([
    ['with a reason phrase', 'HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello'],
    ['without a reason phrase', 'HTTP/1.1 200\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello'],
    ['from an HTTP/1.0 upstream', 'HTTP/1.0 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello'],
    ['with a hop-by-hop field to drop', 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello'],
  ])('a head %s, sent a byte at a time, is relayed intact', async (name, response) => {
    const path = `/bytes-${name.replace(/\W+/g, '-')}`
    answers.set(path, async (sock) => {
      for (let i = 0; i < response.length && !sock.destroyed; i++) {
        await new Promise<void>((r) => sock.write(Buffer.from(response[i] as string, 'latin1'), () => r()))
      }
    })
    const r = await rawRequest(eng.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 })
    expect(r.text).toMatch(/^HTTP\/1\.1 200( OK)?\r\n/)
    expect(r.text).toContain('\r\nX-A: 1\r\n')
    expect(r.text).not.toMatch(/connection: keep-alive/i)
    expect(r.text.endsWith('\r\n\r\nhello')).toBe(true)
  })

  it.each([
    ['a NUL in a field value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nX-More: '],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nX-More: '],
    ['a bare LF', 'HTTP/1.1 200 OK\nX-A: a\r\nX-More: '],
    ['a bad status line', 'HTTP/1.1 2x0 OK\r\nX-A: a\r\nX-More: '],
  ])('a head with %s is answered 502 before the rest of it arrives', async (name, part) => {
    const path = `/bad-${name.replace(/\W+/g, '-')}`
    // The head never ends: only a check of what did arrive can answer before the response timeout (60 s).
    answers.set(path, (sock) => void sock.write(part, 'latin1'))
    const r = await rawRequest(eng.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 })
    expect(r.timedOut).toBe(false)
    expect(statusCodes(r.buf)).toEqual([502])
  })
})

describe('response heads rebuilt for the client', () => {
  it.each([
    ['a short id, head relayed with the id added', 'r-short-id', ''],
    ['a short id, head rebuilt without a hop-by-hop field', 'r-short-id-2', 'Connection: keep-alive\r\n'],
    ['a long id, head relayed with the id added', `r-${'L'.repeat(100)}`, ''],
    ['a long id, head rebuilt without a hop-by-hop field', `r-${'M'.repeat(100)}`, 'Connection: keep-alive\r\n'],
  ])('%s: the id, the fields and a small body arrive intact', async (_name, id, hop) => {
    const path = `/rid-${id.length}-${hop.length}`
    answers.set(path, (sock) => void sock.write(`HTTP/1.1 200 OK\r\n${hop}X-A: 1\r\nContent-Length: 5\r\n\r\nhello`, 'latin1'))
    const r = await rawRequest(eng.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`)
    expect(r.text).toMatch(new RegExp(`^HTTP/1\\.1 200 OK\\r\\nX-A: 1\\r\\nContent-Length: 5\\r\\nx-request-id: ${id}\\r\\n(connection: close\\r\\n)?\\r\\nhello$`))
  })
})

describe('Connection and Transfer-Encoding values, in any case', () => {
  it('Connection: CLOSE from an HTTP/1.1 client closes after the response', async () => {
    const r = await rawRequest(eng.port, `${GET}Host: a\r\nConnection: CLOSE\r\n\r\n`)
    expect([statusCodes(r.buf), r.closed, r.timedOut]).toEqual([[200], true, false])
  })

  it('Connection: Keep-Alive from an HTTP/1.0 client keeps the connection for the next request', async () => {
    const r = await rawRequest(eng.port, 'GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\nHost: a\r\n\r\n')
    expect(statusCodes(r.buf)).toEqual([200, 200])
  })

  it('Transfer-Encoding: Chunked from a client: the body reaches the upstream', async () => {
    const before = up.text().length
    const r = await rawRequest(eng.port, `${POST}Host: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
    expect(statusCodes(r.buf)).toEqual([200])
    await until(() => up.text().slice(before).includes('hello'), 3000, 'the body at the upstream')
  })

  it('Connection: CLOSE from the upstream: the proxy closes that connection instead of pooling it', async () => {
    answers.set('/up-close', (sock) => void sock.write('HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 2\r\n\r\nok', 'latin1'))
    const r = await rawRequest(eng.port, 'GET /up-close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    expect(statusCodes(r.buf)).toEqual([200])
    const served = up.conns.find((c) => c.data.toString('latin1').includes('GET /up-close '))
    expect(served).toBeDefined()
    await until(() => served?.closed === true, 3000, 'the upstream connection closed by the proxy')
  })

  it('Transfer-Encoding: CHUNKED from the upstream: the body is relayed whole', async () => {
    answers.set('/up-chunked', (sock) => void sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'latin1'))
    const r = await rawRequest(eng.port, `GET /up-chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
    const [res] = (await import('../support/responses.ts')).parseResponses(r.buf).responses
    expect([res?.status, res?.body.toString()]).toEqual([200, 'hello world'])
  })
})
