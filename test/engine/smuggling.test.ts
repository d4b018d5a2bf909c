// Malformed and ambiguous requests (RFC 9112 §§2-7, RFC 9110 §5): the proxy
// answers with an error, closes the connection, and the upstream never sees
// the request. Each case is followed by a clean "canary" request that must be
// the only thing reaching the upstream, which proves both that nothing of the
// bad request leaked and that the proxy still serves.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest, statusCodes } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { answerEachHead, rawUpstream } from '../support/upstream.ts'
import type { RawUpstream } from '../support/upstream.ts'

let up: RawUpstream
let eng: StartedEngine
let seq = 0

beforeAll(async () => {
  up = await rawUpstream(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  eng = await startEngine(snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1))
})
afterAll(async () => {
  await eng?.stop()
  await up?.close()
})

const HEAD_RE = (path: string): RegExp => new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n(?:[^\\r\\n]+\\r\\n)*\\r\\n$`)

/** Bytes each upstream connection has received so far. */
const marks = (): number[] => up.conns.map((c) => c.data.length)

/** New bytes per upstream connection since `before`, connections without new bytes left out. */
function since(before: number[]): Array<{ i: number; text: string }> {
  return up.conns.map((c, i) => ({ i, text: c.data.toString('latin1', before[i] ?? 0) })).filter((d) => d.text !== '')
}

async function canary(): Promise<string> {
  const path = `/canary-${++seq}`
  const r = await rawRequest(eng.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
  expect(statusCodes(r.buf), 'the canary after a rejected request').toEqual([200])
  return path
}

/**
 * Sends `bytes`, expects exactly one response with a status in `allowed` and
 * the connection closed. Header-level errors must forward nothing at all.
 * For errors found in the body (`bodyError`), a streaming proxy may already
 * have sent the head upstream; then it must abort that upstream connection
 * and must not have forwarded the offending bytes (`badBytes`).
 */
async function expectRejected(bytes: string, allowed: number[], bodyError?: { badBytes: string }): Promise<void> {
  const before = marks()
  const r = await rawRequest(eng.port, bytes)
  const codes = statusCodes(r.buf)
  expect(codes, `response to ${JSON.stringify(bytes.slice(0, 120))}: ${JSON.stringify(r.text.slice(0, 200))}`).toHaveLength(1)
  expect(allowed).toContain(codes[0])
  expect(r.closed, 'the proxy closes the connection after the error').toBe(true)
  const path = await canary()
  await until(() => since(before).some((d) => d.text.includes(`GET ${path} `)), 3000, 'the canary at the upstream')
  const fresh = since(before)
  const canaryConn = fresh.filter((d) => HEAD_RE(path).test(d.text))
  expect(canaryConn, `upstream received ${JSON.stringify(fresh)}`).toHaveLength(1)
  const leaked = fresh.filter((d) => !HEAD_RE(path).test(d.text))
  if (bodyError === undefined) {
    expect(leaked, 'nothing of the bad request reached the upstream').toEqual([])
    return
  }
  for (const d of leaked) {
    expect(d.text).not.toContain(bodyError.badBytes)
    await until(() => up.conns[d.i]?.closed === true, 3000, 'the proxy to abort the half-forwarded request')
  }
}

const POST = 'POST /bad HTTP/1.1\r\nHost: a\r\n'
const GET = 'GET /bad HTTP/1.1\r\n'

describe('message length ambiguity (RFC 9112 §6)', () => {
  it.each([
    ['Content-Length then Transfer-Encoding', `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding then Content-Length', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`],
    ['two different Content-Length', `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
    ['Content-Length: 5, 5', `${POST}Content-Length: 5, 5\r\n\r\nhello`],
    ['Content-Length: +5', `${POST}Content-Length: +5\r\n\r\nhello`],
    ['Content-Length: -1', `${POST}Content-Length: -1\r\n\r\n`],
    ['Content-Length with inner junk (5 5)', `${POST}Content-Length:  5 5 \r\n\r\nhello`],
    ['Content-Length in hex', `${POST}Content-Length: 0x5\r\n\r\nhello`],
    ['Transfer-Encoding: chunked twice', `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: chunked, chunked', `${POST}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`],
  ])('%s: 400', async (_name, bytes) => {
    await expectRejected(bytes, [400])
  })

  // Chunked not last: MUST 400 (§6.1); an unknown coding: SHOULD 501 (§6.1). Either is a rejection.
  it.each([
    ['Transfer-Encoding: chunked, identity', `${POST}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: xchunked', `${POST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: gzip', `${POST}Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n`],
  ])('%s: 400 or 501', async (_name, bytes) => {
    await expectRejected(bytes, [400, 501])
  })

  it.each([
    ['an empty Host (RFC 9112 §3.2 allows it)', 'Host: '],
    ['an IPv6 literal Host with a port', 'Host: [::1]:8080'],
    ['a Host with a trailing dot', 'Host: a.example.'],
  ])('valid: %s is served', async (_name, hostLine) => {
    const r = await rawRequest(eng.port, `GET /valid HTTP/1.1\r\n${hostLine}\r\nConnection: close\r\n\r\n`)
    expect(statusCodes(r.buf)).toEqual([200])
  })

  it('Content-Length with surrounding whitespace is valid and forwarded intact', async () => {
    const before = marks()
    const r = await rawRequest(eng.port, `POST /ows HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length:  5 \r\n\r\nhello`)
    expect(statusCodes(r.buf)).toEqual([200])
    await until(() => since(before).some((d) => d.text.endsWith('hello')), 3000, 'the body at the upstream')
    expect(
      since(before)
        .map((d) => d.text)
        .join(''),
    ).toMatch(/^POST \/ows HTTP\/1\.1\r\n(?:[^\r\n]+\r\n)*content-length: ?5\r\n(?:[^\r\n]+\r\n)*\r\nhello$/i)
  })
})

describe('header syntax (RFC 9112 §5, RFC 9110 §5.5)', () => {
  it.each([
    ['obs-fold hiding Transfer-Encoding', `${POST}X-Foo: bar\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding value folded to the next line', `${POST}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`],
    ['obs-fold continuation line', `${GET}Host: a\r\nX-Foo: a\r\n\tb\r\n\r\n`],
    ['whitespace before colon (Host : x)', `${GET}Host : a\r\n\r\n`],
    ['whitespace before colon (Transfer-Encoding : chunked)', `${POST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
    ['header name with @', `${GET}Host: a\r\nX@Foo: a\r\n\r\n`],
    ['header name with a space', `${GET}Host: a\r\nX Foo: a\r\n\r\n`],
    ['header name with ( )', `${GET}Host: a\r\nX(Foo): a\r\n\r\n`],
    ['empty header name', `${GET}Host: a\r\n: a\r\n\r\n`],
    ['NUL in a value', `${GET}Host: a\r\nX-Foo: a\x00b\r\n\r\n`],
    ['CR alone in a value', `${GET}Host: a\r\nX-Foo: a\rb\r\n\r\n`],
    ['control char 0x01 in a value', `${GET}Host: a\r\nX-Foo: a\x01b\r\n\r\n`],
    ['DEL in a value', `${GET}Host: a\r\nX-Foo: a\x7fb\r\n\r\n`],
    ['bare LF line endings', 'GET /bad HTTP/1.1\nHost: a\n\n'],
    ['a bare LF among CRLFs', `${GET}Host: a\nX-Foo: b\r\n\r\n`],
    ['missing Host on HTTP/1.1', `${GET}Accept: */*\r\n\r\n`],
    ['two Host headers', `${GET}Host: a\r\nHost: b\r\n\r\n`],
    ['Host with a space', `${GET}Host: a b\r\n\r\n`],
    ['Host with a slash', `${GET}Host: a/b\r\n\r\n`],
    ['Host with userinfo', `${GET}Host: user@a\r\n\r\n`],
    ['Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1)', 'POST /bad HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Content-Length beyond 2^53', `${POST}Content-Length: 99999999999999999999\r\n\r\nhello`],
  ])('%s: 400', async (_name, bytes) => {
    await expectRejected(bytes, [400])
  })
})

describe('request line (RFC 9112 §3)', () => {
  it('HTTP/0.9 "GET /": 400', async () => {
    await expectRejected('GET /\r\n', [400])
  })

  it.each([
    ['a space inside the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a fragment in the target', 'GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a control byte in the target', 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['a method with a non-token byte', 'G@T /bad HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['two spaces after the method', 'GET  /bad HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['whitespace before the request line', ' GET /bad HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('%s: 400', async (_name, bytes) => {
    await expectRejected(bytes, [400])
  })

  it('CONNECT is not tunnelled by a reverse proxy', async () => {
    await expectRejected('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', [400, 403, 405, 501])
  })

  it('300 small header fields: served with all of them, or refused with 431, never a crash', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `X-H${i}: v${i}\r\n`).join('')
    const before = marks()
    const r = await rawRequest(eng.port, `GET /many HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${many}\r\n`)
    const codes = statusCodes(r.buf)
    expect(codes).toHaveLength(1)
    if (codes[0] === 200) {
      const got = since(before)
        .map((d) => d.text)
        .join('')
      for (let i = 0; i < 300; i++) expect(got).toContain(`X-H${i}: v${i}\r\n`)
    } else {
      expect(codes[0]).toBe(431)
    }
    await canary()
  })

  it('lower-case protocol name: 400', async () => {
    await expectRejected('GET /bad http/1.1\r\nHost: a\r\n\r\n', [400])
  })

  it('HTTP/2.0 in an HTTP/1 request line: 505 or 400', async () => {
    await expectRejected('GET /bad HTTP/2.0\r\nHost: a\r\n\r\n', [400, 505])
  })

  // RFC 9110 §2.5: a higher minor version SHOULD be handled as the highest one
  // the recipient implements (1.1). Rejecting it is allowed too; anything else is not.
  it('HTTP/1.2: served as HTTP/1.1 or rejected, never passed through as 1.2', async () => {
    const before = marks()
    const r = await rawRequest(eng.port, 'GET /v12 HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n')
    const codes = statusCodes(r.buf)
    expect(codes).toHaveLength(1)
    if (codes[0] === 200) {
      expect(
        since(before)
          .map((d) => d.text)
          .join(''),
      ).toMatch(/^GET \/v12 HTTP\/1\.1\r\n/)
    } else {
      expect([400, 505]).toContain(codes[0])
      expect(r.closed).toBe(true)
      await canary()
    }
  })

  it('a request line over 8 KiB: 414', async () => {
    await expectRejected(`GET /${'a'.repeat(9 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n`, [414])
  })

  it('a request line over maxHeaderBytes: 414, not 431', async () => {
    await expectRejected(`GET /${'a'.repeat(33 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n`, [414])
  })

  it('a header block over 32 KiB: 431', async () => {
    const big = Array.from({ length: 40 }, (_, i) => `X-Big-${i}: ${'b'.repeat(1000)}\r\n`).join('')
    await expectRejected(`${GET}Host: a\r\n${big}\r\n`, [431])
  })

  it('a request line of 8000 octets (RFC 9112 §3 recommended minimum) is served', async () => {
    const path = `/${'p'.repeat(8000 - 'GET / HTTP/1.1'.length)}`
    const r = await rawRequest(eng.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
    expect(statusCodes(r.buf)).toEqual([200])
  })
})

describe('chunked body syntax (RFC 9112 §7.1)', () => {
  const chunked = `${POST}Transfer-Encoding: chunked\r\n\r\n`
  it.each([
    ['chunk size zz', 'zz\r\nhello\r\n0\r\n\r\n', 'zz\r\n'],
    ['chunk size 0x5', '0x5\r\nhello\r\n0\r\n\r\n', '0x5\r\n'],
    ['chunk size with leading space', ' 5\r\nhello\r\n0\r\n\r\n', ' 5\r\n'],
    ['chunk size overflow', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n', 'ffffffffffffffffff'],
    ['negative chunk size', '-5\r\nhello\r\n0\r\n\r\n', '-5\r\n'],
    ['chunk data not followed by CRLF', '5\r\nhelloXX0\r\n\r\n', 'helloXX'],
    ['a bare CR in a chunk extension', '5;a=\rb\r\nhello\r\n0\r\n\r\n', ';a=\rb'],
    ['a trailer field with whitespace before its colon', '5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n', 'X-T :'],
    ['an obs-folded trailer field', '5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n', '\r\n 2'],
  ])('%s: 400', async (_name, body, badBytes) => {
    await expectRejected(chunked + body, [400], { badBytes })
  })
})

describe('smuggling attempts never deliver a second request', () => {
  const inner = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
  it.each([
    ['CL.TE', `${POST}Content-Length: ${5 + inner.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`],
    ['TE.CL', `${POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${(inner.length).toString(16)}\r\n${inner}\r\n0\r\n\r\n`],
    ['TE.TE (second TE obfuscated)', `${POST}Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\nContent-Length: 4\r\n\r\n${(inner.length).toString(16)}\r\n${inner}\r\n0\r\n\r\n`],
    ['TE with a tab', `${POST}Content-Length: ${5 + inner.length}\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n${inner}`],
  ])('%s', async (_name, bytes) => {
    const before = marks()
    await expectRejected(bytes, [400, 501])
    expect(
      since(before)
        .map((d) => d.text)
        .join(''),
    ).not.toContain('/smuggled')
    expect(up.text()).not.toContain('/smuggled')
  })
})
