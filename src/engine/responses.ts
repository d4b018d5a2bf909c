// Responses the proxy itself sends, rendered once at startup. Each exists in
// a keep-alive form (the request was read completely, the connection may
// carry on) and a `connection: close` form (rejections, unread bodies,
// draining). No Date header: like HAProxy's error pages, these are constant
// bytes.

/** Reason phrases of the statuses the proxy answers itself (HTTP/2 error bodies use them too). */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

/** Fields a status needs: a 401 says how to authenticate (access.BasicAuth), a 503 when to come back. */
const EXTRA: Record<number, string> = {
  401: 'www-authenticate: Basic realm="balancer", charset="UTF-8"\r\n',
  503: 'retry-after: 1\r\n',
}

function render(status: number, close: boolean, headOnly: boolean): Buffer {
  const reason = REASON_PHRASES[status] ?? 'Error'
  const body = `${status} ${reason}\n`
  const extra = EXTRA[status] ?? ''
  const conn = close ? 'connection: close\r\n' : ''
  return Buffer.from(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n${extra}${conn}\r\n${headOnly ? '' : body}`, 'latin1')
}

const KEEP = new Map<number, Buffer>()
const CLOSE = new Map<number, Buffer>()
// For HEAD requests: the same heads without the body (RFC 9110 section 9.3.2),
// or a keep-alive client would read the body as the next response.
const KEEP_HEAD = new Map<number, Buffer>()
const CLOSE_HEAD = new Map<number, Buffer>()
for (const s of Object.keys(REASON_PHRASES)) {
  KEEP.set(Number(s), render(Number(s), false, false))
  CLOSE.set(Number(s), render(Number(s), true, false))
  KEEP_HEAD.set(Number(s), render(Number(s), false, true))
  CLOSE_HEAD.set(Number(s), render(Number(s), true, true))
}
const FALLBACK_CLOSE = render(502, true, false)
const FALLBACK_CLOSE_HEAD = render(502, true, true)

/**
 * A response with fields and a body of its own (route rules: 429 with its
 * Retry-After, a ForwardAuth refusal as the auth service said it, an error
 * page). `headOnly` (a HEAD request): the body's length is said, the body
 * not sent.
 */
export function customResponse(status: number, close: boolean, fields: string, body: Buffer, headOnly = false): Buffer {
  const head = `HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? 'Status'}\r\n${fields}content-length: ${body.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n`
  return body.length === 0 || headOnly ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body])
}

/**
 * The pre-rendered response for `status` (one of REASON_PHRASES'); unknown statuses
 * give 502 + close. `headOnly` (a HEAD request): the head alone.
 */
export function errorResponse(status: number, close: boolean, headOnly = false): Buffer {
  if (headOnly) return (close ? CLOSE_HEAD.get(status) : KEEP_HEAD.get(status)) ?? FALLBACK_CLOSE_HEAD
  return (close ? CLOSE.get(status) : KEEP.get(status)) ?? FALLBACK_CLOSE
}
