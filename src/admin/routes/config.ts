// GET / (the whole configuration) and GET /status.

import type { FastifyInstance } from 'fastify'
import { validConfigBytes } from '../../model/canonical.ts'
import type { AdminContext } from '../context.ts'
import { sendTagged } from '../etag.ts'
import { allUpstreamsStatus, liveUpstreams } from '../live.ts'
import { configText, wantsStored } from '../origins.ts'

export function configRoutes(app: FastifyInstance, ctx: AdminContext): void {
  // What is served: the stored configuration in its canonical text, plus
  // every discovered part with its origin; ?origin=store: as stored. The
  // ETag is the stored configuration's either way.
  app.get('/', async (req, reply) => {
    const { config } = ctx.control.stored()
    const served = ctx.control.served()
    if (wantsStored(req) || served.origins.size === 0) return sendTagged(req, reply, 200, config, validConfigBytes(config))
    return sendTagged(req, reply, 200, config, configText(served), true)
  })

  app.get('/status', async () => {
    const { control, plane } = ctx
    const store = control.storeInfo()
    const upstreams = liveUpstreams(plane)
    const applied = control.applied()
    const workers = plane?.workers() ?? null
    return {
      store: { kind: store.kind, location: store.location, revision: control.stored().revision },
      lastError: control.lastError(),
      ...(upstreams === null ? {} : { upstreams: allUpstreamsStatus(upstreams) }),
      snapshotVersion: applied.version,
      appliedRevision: applied.revision,
      discovery: { ...control.discovery(), ...ctx.discovery?.() },
      storeHealth: store.health,
      ...(plane === null ? {} : { engine: plane.engine() }),
      ...(workers === null ? {} : { workers }),
    }
  })
}
