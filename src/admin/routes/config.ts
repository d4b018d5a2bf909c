// GET / (the whole configuration) and GET /status.

import type { FastifyInstance } from 'fastify'
import { serializeConfig } from '../../model/canonical.ts'
import type { AdminContext } from '../context.ts'
import { sendTagged } from '../etag.ts'
import { allUpstreamsStatus } from '../live.ts'

export function configRoutes(app: FastifyInstance, ctx: AdminContext, status?: () => unknown): void {
  // The served configuration (the last good one), in the store's canonical text.
  app.get('/', async (req, reply) => {
    const { config } = ctx.state.current()
    return sendTagged(req, reply, 200, config, serializeConfig(config))
  })

  app.get('/status', async () => {
    const extra = status?.()
    const live = ctx.live()
    return {
      store: { kind: ctx.store.kind, location: ctx.store.location, revision: ctx.state.current().revision },
      lastError: ctx.state.lastError(),
      ...(live === null ? {} : { upstreams: allUpstreamsStatus(live) }),
      ...(typeof extra === 'object' && extra !== null ? extra : {}),
    }
  })
}
