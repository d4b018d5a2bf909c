// GET|POST|PUT /server/{address}/filter and /server/{address}/route/{name}/filter.
// Every route always has a filter (empty matches everything), so POST and PUT
// both replace it and answer 200.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { normalizeFilter } from '../../model/parse.ts'
import { ROUTE_DEFAULT } from '../../model/types.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { findRoute, requireRoute, requireServer, withRoute, withServer } from '../edits.ts'
import { checkIfMatch, sendRead, sendTagged } from '../etag.ts'
import { lookupServer } from '../origins.ts'

interface FilterParams {
  address: string
  name?: string
}
type Req = FastifyRequest<{ Params: FilterParams }>

export function filterRoutes(app: FastifyInstance, ctx: AdminContext): void {
  for (const url of ['/server/:address/filter', '/server/:address/route/:name/filter']) {
    app.get<{ Params: FilterParams }>(url, async (req, reply) => {
      const name = req.params.name ?? ROUTE_DEFAULT
      const l = lookupServer(ctx.control, req, req.params.address)
      const shown = requireRoute(l.shown, name).filter
      const stored = l.stored === undefined ? undefined : findRoute(l.stored, name)?.filter
      return sendRead(req, reply, { stored, served: shown })
    })

    const write = async (req: Req, reply: FastifyReply) => {
      const filter = normalizeFilter(req.body ?? {}, 'body')
      const ifMatch = ifMatchHeader(req.headers)
      await commit(ctx, (cfg, served) => {
        const server = requireServer(cfg, req.params.address, served)
        const route = requireRoute(server, req.params.name ?? ROUTE_DEFAULT, served)
        checkIfMatch(ifMatch, route.filter, [route, server, cfg])
        return withServer(cfg, withRoute(server, { ...route, filter }))
      })
      return sendTagged(req, reply, 200, filter)
    }
    app.post<{ Params: FilterParams }>(url, write)
    app.put<{ Params: FilterParams }>(url, write)
  }
}
