// One error shape for every failure the API returns:
//   {"code":"E_…","message":"…","problems":[{"path","message"}]}
// with the BalancerError's status. Fastify's own errors (body too large, bad
// content type, unknown route) are translated to the same codes.

import type { FastifyError, FastifyInstance } from 'fastify'
import { BalancerError, ErrorCode } from '../model/errors.ts'

export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | BalancerError | Error, req, reply) => {
    const be = toBalancerError(err)
    // Only unexpected failures are logged; client errors are the client's to read.
    if (be.code === ErrorCode.Internal || be.code === ErrorCode.StoreUnavailable) req.log.error({ err }, 'admin request failed')
    if (be.code === ErrorCode.Unauthorized) reply.header('www-authenticate', 'Bearer realm="balancer"')
    return reply.code(be.status).type('application/json; charset=utf-8').send(be.toJSON())
  })

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url
    const be = new BalancerError(ErrorCode.NotFound, `no API route ${req.method} ${path}; see /docs`)
    return reply.code(404).type('application/json; charset=utf-8').send(be.toJSON())
  })
}

export function toBalancerError(err: unknown): BalancerError {
  if (err instanceof BalancerError) return err
  const fe = err as Partial<FastifyError>
  const message = typeof fe.message === 'string' ? fe.message : String(err)
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BalancerError(ErrorCode.TooLarge, 'request body is larger than the limit')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BalancerError(ErrorCode.UnsupportedMedia, 'unsupported content type; send JSON')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new BalancerError(ErrorCode.BadJson, message)
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500
  if (status === 404) return new BalancerError(ErrorCode.NotFound, message)
  if (status === 413) return new BalancerError(ErrorCode.TooLarge, message)
  if (status === 415) return new BalancerError(ErrorCode.UnsupportedMedia, message)
  if (status >= 400 && status < 500) return new BalancerError(ErrorCode.Validation, message)
  return new BalancerError(ErrorCode.Internal, 'internal error; see the balancer log')
}
