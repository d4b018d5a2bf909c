// GET /ready: 200 once the balancer serves its configuration, 503 while it is
// starting or draining (src/control/readiness.ts says when). For container
// health checks and load balancers in front: it needs no token (a probe has
// none) and tells nothing but the state, so it is safe without one; the
// cross-origin check still applies (src/admin/access.ts).

import type { FastifyInstance } from 'fastify'
import type { ReadyState } from '../control/readiness.ts'

export const READY_PATH = '/ready'

export function readyRoute(app: FastifyInstance, ready: () => ReadyState): void {
  app.get(READY_PATH, async (_req, reply) => {
    const state = ready()
    reply.header('cache-control', 'no-store')
    return reply.code(state === 'ready' ? 200 : 503).send({ state })
  })
}
