// Responses the proxy itself sends, rendered once at startup. Each exists in
// a keep-alive form (the request was read completely, the connection may
// carry on) and a `connection: close` form (rejections, unread bodies,
// draining). No Date header: like HAProxy's error pages, these are constant
// bytes.

const TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

function render(status: number, close: boolean): Buffer {
  const reason = TEXT[status] ?? 'Error'
  const body = `${status} ${reason}\n`
  const extra = status === 503 ? 'retry-after: 1\r\n' : ''
  const conn = close ? 'connection: close\r\n' : ''
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n${extra}${conn}\r\n${body}`,
    'latin1',
  )
}

const KEEP = new Map<number, Buffer>()
const CLOSE = new Map<number, Buffer>()
for (const s of Object.keys(TEXT)) {
  KEEP.set(Number(s), render(Number(s), false))
  CLOSE.set(Number(s), render(Number(s), true))
}
const FALLBACK_CLOSE = render(502, true)

/** The pre-rendered response for `status` (one of TEXT's); unknown statuses give 502 + close. */
export function errorResponse(status: number, close: boolean): Buffer {
  return (close ? CLOSE.get(status) : KEEP.get(status)) ?? FALLBACK_CLOSE
}
