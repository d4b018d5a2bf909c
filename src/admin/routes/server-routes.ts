// Virtual hosting: GET /server/{address}/route (every route, `default` first)
// and GET|POST|PUT|DELETE /server/{address}/route/{name}. The name `default`
// is the server's own filter, upstreams and fallbacks: it always exists, can
// be replaced with PUT, and cannot be created (409) or deleted (400).

import type { FastifyInstance } from 'fastify'
import { canonicalRoute } from '../../control/provenance.ts'
import { validationError } from '../../model/errors.ts'
import { normalizeRoute } from '../../model/parse.ts'
import { ROUTE_DEFAULT } from '../../model/types.ts'
import type { Route } from '../../model/types.ts'
import { routeBase } from '../addressing.ts'
import { completeBody, withoutStatus } from '../body.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { defaultRoute, exists, findRoute, refuseDiscovered, requireRoute, requireServer, withRoute, withServer, withoutRoute } from '../edits.ts'
import { checkIfMatch, sendRead, sendTagged } from '../etag.ts'
import { liveUpstreams, membersStatus } from '../live.ts'
import { hasDiscovered, lookupServer, routeView, storedPartsOfRoute } from '../origins.ts'

interface RouteParams {
  address: string
  name: string
}

export function routeRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Params: { address: string } }>('/server/:address/route', async (req, reply) => {
    const { address } = req.params
    const l = lookupServer(ctx.control, req, address)
    const shown = [defaultRoute(l.shown), ...l.shown.routes]
    const stored = l.stored === undefined ? undefined : [defaultRoute(l.stored), ...l.stored.routes]
    const discovered = !l.fromStore && hasDiscovered(l.served, address)
    const body = shown.map((r) => (discovered ? routeView(l.served, address, r) : canonicalRoute(r)))
    return sendRead(req, reply, { stored, served: shown, body: JSON.stringify(body), live: discovered })
  })

  app.get<{ Params: RouteParams }>('/server/:address/route/:name', async (req, reply) => {
    const { address, name } = req.params
    const l = lookupServer(ctx.control, req, address)
    const route = requireRoute(l.shown, name)
    const stored = l.stored === undefined ? undefined : findRoute(l.stored, name)
    const discovered = !l.fromStore && hasDiscovered(l.served, address, name)
    const view = discovered ? routeView(l.served, address, route) : canonicalRoute(route)
    const live = liveUpstreams(ctx.plane)
    const body = live === null ? view : { ...(view as object), status: membersStatus([route], live) }
    return sendRead(req, reply, { stored, served: route, body: JSON.stringify(body), live: discovered || live !== null })
  })

  const write = (createOnly: boolean) =>
    app.route<{ Params: RouteParams }>({
      method: createOnly ? 'POST' : 'PUT',
      url: '/server/:address/route/:name',
      handler: async (req, reply) => {
        const { address, name } = req.params
        const route = routeFromBody(storedPartsOfRoute(withoutStatus(req.body), ctx.control.served(), address, name), name)
        const ifMatch = ifMatchHeader(req.headers)
        let created = false
        await commit(ctx, (cfg, served) => {
          const server = requireServer(cfg, address, served)
          const existing = findRoute(server, name)
          if (existing === undefined) refuseDiscovered(served, address, name)
          checkIfMatch(ifMatch, existing, [server, cfg])
          if (existing !== undefined && createOnly) throw exists(`route "${name}" already exists on server "${address}"; PUT replaces it`)
          created = existing === undefined
          return withServer(cfg, withRoute(server, route))
        })
        if (created) reply.header('location', routeBase(address, name))
        return sendTagged(req, reply, created ? 201 : 200, route)
      },
    })
  write(true)
  write(false)

  app.delete<{ Params: RouteParams }>('/server/:address/route/:name', async (req, reply) => {
    const { address, name } = req.params
    if (name === ROUTE_DEFAULT) {
      throw validationError([{ path: 'path.name', message: 'the default route is part of the server and cannot be deleted; DELETE the server or PUT an empty default route' }])
    }
    const ifMatch = ifMatchHeader(req.headers)
    await commit(ctx, (cfg, served) => {
      const server = requireServer(cfg, address, served)
      const existing = requireRoute(server, name, served)
      checkIfMatch(ifMatch, existing, [server, cfg])
      return withServer(cfg, withoutRoute(server, name))
    })
    return reply.code(204).send()
  })
}

/** The body's name may be omitted (the URL gives it); if present it must agree with the URL. */
function routeFromBody(body: unknown, name: string): Route {
  if (name !== ROUTE_DEFAULT) {
    const route = normalizeRoute(completeBody(body, { name }), 'body')
    if (route.name !== name) {
      throw validationError([{ path: 'body.name', message: `must match the name in the URL "${name}", got "${route.name}"` }])
    }
    return route
  }
  // The model reserves `default` for the server's own fields, so the body is
  // read as a route under a stand-in name and the name checked here.
  const raw = completeBody(body, {})
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return normalizeRoute(raw, 'body')
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(raw)) {
    if (k.toLowerCase() !== 'name') fields[k] = v
    else if (v !== ROUTE_DEFAULT && v !== null) {
      throw validationError([{ path: `body.${k}`, message: `must match the name in the URL "default", got ${JSON.stringify(v)}` }])
    }
  }
  return { ...normalizeRoute({ ...fields, name: STAND_IN }, 'body'), name: ROUTE_DEFAULT }
}

const STAND_IN = 'default-route-body'
