// A small, strict HTTP/1.1 response parser for raw-socket tests: splits a byte
// stream into responses (interim 1xx ones included) using the RFC 9112 §6.3
// body-length rules, so pipelined answers and framing errors are visible.

export interface ParsedResponse {
  version: string
  status: number
  reason: string
  /** Header fields in order, names lower-cased. */
  headers: Array<[string, string]>
  body: Buffer
  /** Trailer fields of a chunked body, names lower-cased. */
  trailers: Array<[string, string]>
  /** How the body was delimited. */
  framing: 'none' | 'length' | 'chunked' | 'close'
}

/** First value of a header (names are case-insensitive). */
export function header(r: ParsedResponse, name: string): string | undefined {
  const n = name.toLowerCase()
  return r.headers.find(([k]) => k === n)?.[1]
}

export function headerAll(r: ParsedResponse, name: string): string[] {
  const n = name.toLowerCase()
  return r.headers.filter(([k]) => k === n).map(([, v]) => v)
}

export type ParseStep = { res: ParsedResponse; next: number } | { incomplete: true } | { error: string }

/**
 * Parses one response starting at `at`. `noBody`: the request was HEAD (or a
 * CONNECT 2xx). `eof`: the peer has closed, so a close-delimited body ends at
 * the end of `buf`.
 */
export function parseResponse(buf: Buffer, at: number, noBody: boolean, eof: boolean): ParseStep {
  const headEnd = buf.indexOf('\r\n\r\n', at, 'latin1')
  if (headEnd < 0) return eof && at < buf.length ? { error: 'truncated head' } : { incomplete: true }
  const lines = buf.toString('latin1', at, headEnd).split('\r\n')
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '')
  if (m === null) return { error: `bad status line ${JSON.stringify(lines[0])}` }
  const headers: Array<[string, string]> = []
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':')
    if (c <= 0) return { error: `bad header line ${JSON.stringify(line)}` }
    headers.push([line.slice(0, c).toLowerCase(), line.slice(c + 1).trim()])
  }
  const res: ParsedResponse = {
    version: m[1] ?? '',
    status: Number(m[2]),
    reason: m[3] ?? '',
    headers,
    body: Buffer.alloc(0),
    trailers: [],
    framing: 'none',
  }
  const bodyAt = headEnd + 4
  if (noBody || res.status < 200 || res.status === 204 || res.status === 304) return { res, next: bodyAt }
  const te = header(res, 'transfer-encoding')
  if (te !== undefined) {
    if (te.toLowerCase() !== 'chunked') return { error: `unexpected transfer-encoding ${te}` }
    return parseChunked(buf, bodyAt, res)
  }
  const cl = headerAll(res, 'content-length')
  if (cl.length > 0) {
    if (cl.length > 1 || !/^\d+$/.test(cl[0] ?? '')) return { error: `bad content-length ${cl.join(',')}` }
    const n = Number(cl[0])
    if (buf.length - bodyAt < n) return eof ? { error: 'truncated body' } : { incomplete: true }
    res.body = buf.subarray(bodyAt, bodyAt + n)
    res.framing = 'length'
    return { res, next: bodyAt + n }
  }
  if (!eof) return { incomplete: true }
  res.body = buf.subarray(bodyAt)
  res.framing = 'close'
  return { res, next: buf.length }
}

function parseChunked(buf: Buffer, at: number, res: ParsedResponse): ParseStep {
  const parts: Buffer[] = []
  let p = at
  for (;;) {
    const eol = buf.indexOf('\r\n', p, 'latin1')
    if (eol < 0) return { incomplete: true }
    const sizeText = buf.toString('latin1', p, eol).split(';')[0] ?? ''
    if (!/^[0-9a-fA-F]{1,15}$/.test(sizeText)) return { error: `bad chunk size ${JSON.stringify(sizeText)}` }
    const size = parseInt(sizeText, 16)
    p = eol + 2
    if (size === 0) break
    if (buf.length < p + size + 2) return { incomplete: true }
    if (buf.toString('latin1', p + size, p + size + 2) !== '\r\n') return { error: 'chunk data not followed by CRLF' }
    parts.push(buf.subarray(p, p + size))
    p += size + 2
  }
  for (;;) {
    const eol = buf.indexOf('\r\n', p, 'latin1')
    if (eol < 0) return { incomplete: true }
    const line = buf.toString('latin1', p, eol)
    p = eol + 2
    if (line === '') break
    const c = line.indexOf(':')
    if (c <= 0) return { error: `bad trailer line ${JSON.stringify(line)}` }
    res.trailers.push([line.slice(0, c).toLowerCase(), line.slice(c + 1).trim()])
  }
  res.body = Buffer.concat(parts)
  res.framing = 'chunked'
  return { res, next: p }
}

export interface ParsedStream {
  responses: ParsedResponse[]
  /** Set when bytes follow that are not a valid response. */
  error: string | null
  /** Bytes after the last complete response. */
  rest: Buffer
}

/**
 * Splits everything a connection received into responses. `noBodyAt` holds
 * the ordinals (0-based, counting final responses only) answering HEAD.
 */
export function parseResponses(data: Buffer | string, eof = true, noBodyAt: ReadonlySet<number> = new Set()): ParsedStream {
  const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
  const responses: ParsedResponse[] = []
  let at = 0
  let finals = 0
  while (at < buf.length) {
    const step = parseResponse(buf, at, noBodyAt.has(finals), eof)
    if ('error' in step) return { responses, error: step.error, rest: buf.subarray(at) }
    if ('incomplete' in step) return { responses, error: null, rest: buf.subarray(at) }
    responses.push(step.res)
    if (step.res.status >= 200) finals++
    at = step.next
  }
  return { responses, error: null, rest: buf.subarray(at) }
}

/** Status codes of every response in the stream, interim ones included. */
export function statusCodes(data: Buffer | string): number[] {
  return parseResponses(data).responses.map((r) => r.status)
}
