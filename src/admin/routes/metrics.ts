// GET /metrics: Prometheus text exposition, behind the token like every API
// route (a scraper sends it with `authorization: Bearer`; prometheus.yml's
// `authorization.credentials_file`). `--metrics HOST:PORT` serves the same
// text without a token on an address of its own (observability/metrics-server.ts).

import type { FastifyInstance } from 'fastify'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import { METRICS_CONTENT_TYPE } from '../../observability/metrics.ts'

export function metricsRoutes(app: FastifyInstance, render: (() => Promise<string>) | undefined): void {
  app.get('/metrics', async (_req, reply) => {
    if (render === undefined) throw new BalancerError(ErrorCode.NotFound, 'this API runs without a data plane: no metrics')
    const text = await render()
    return reply.header('content-type', METRICS_CONTENT_TYPE).header('cache-control', 'no-store').send(text)
  })
}
