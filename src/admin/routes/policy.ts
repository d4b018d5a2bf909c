// The policy groups as sub-resources, in the style of `/filter`:
//   GET|PUT|DELETE /server/{address}/{health|passive|retry|limits}
//   GET|PUT|DELETE /server/{address}/route/{name}/{health|passive|retry|limits}
// The first form is the server's own group (the `default` route's, which
// named routes inherit). GET answers the group that applies: the route's
// own, else its server's, else the defaults; `health` is 404 when no active
// check applies. PUT stores the body as the object's own group, completed
// with defaults. DELETE removes the object's own group: a server goes back
// to the defaults (no active check), a route back to its server's.

import type { FastifyInstance } from 'fastify'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import { normalizeGroup } from '../../model/parse.ts'
import type { PolicyGroup } from '../../model/policy.ts'
import { POLICY_GROUPS, defaultsOf } from '../../model/policy.ts'
import type { HealthCheck, Limits, Passive, Policy, Retry, Route, Server } from '../../model/types.ts'
import { ROUTE_DEFAULT } from '../../model/types.ts'
import { rulesOf } from '../../model/rules-of.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { findRoute, requireRoute, requireServer, withRoute, withServer } from '../edits.ts'
import { checkIfMatch, sendRead, sendTagged } from '../etag.ts'
import { lookupServer } from '../origins.ts'

interface PolicyParams {
  address: string
  name?: string
}

type Group = HealthCheck | Passive | Retry | Limits

export function policyRoutes(app: FastifyInstance, ctx: AdminContext): void {
  for (const group of POLICY_GROUPS) {
    for (const base of ['/server/:address', '/server/:address/route/:name']) {
      const url = `${base}/${group}`

      app.get<{ Params: PolicyParams }>(url, async (req, reply) => {
        const name = req.params.name ?? ROUTE_DEFAULT
        const l = lookupServer(ctx.control, req, req.params.address)
        const value = applying(l.shown, requireRoute(l.shown, name), group)
        if (value === undefined) throw noCheck(l.shown, name)
        const route = l.stored === undefined ? undefined : findRoute(l.stored, name)
        const stored = l.stored === undefined || route === undefined ? undefined : applying(l.stored, route, group)
        return sendRead(req, reply, { stored, served: value })
      })

      app.put<{ Params: PolicyParams }>(url, async (req, reply) => {
        const value = normalizeGroup(group, req.body ?? {}, 'body')
        const ifMatch = ifMatchHeader(req.headers)
        await commit(ctx, (cfg, served) => {
          const server = requireServer(cfg, req.params.address, served)
          const route = requireRoute(server, req.params.name ?? ROUTE_DEFAULT, served)
          checkIfMatch(ifMatch, applying(server, route, group), [route, server, cfg])
          return withServer(cfg, withRoute(server, { ...withoutGroup(route, group), [group]: value }))
        })
        return sendTagged(req, reply, 200, value)
      })

      app.delete<{ Params: PolicyParams }>(url, async (req, reply) => {
        const ifMatch = ifMatchHeader(req.headers)
        await commit(ctx, (cfg, served) => {
          const server = requireServer(cfg, req.params.address, served)
          const route = requireRoute(server, req.params.name ?? ROUTE_DEFAULT, served)
          checkIfMatch(ifMatch, applying(server, route, group), [route, server, cfg])
          return withServer(cfg, withRoute(server, withoutGroup(route, group)))
        })
        return reply.code(204).send()
      })
    }
  }
}

/**
 * The group that applies to route (the default route's is the server's):
 * its own, else the server's, else the defaults. undefined: no active check.
 */
function applying(server: Server, route: Route, group: PolicyGroup): Group | undefined {
  const own = route[group]
  if (own === null) return undefined
  if (own !== undefined) return own
  const inherited = route.name === ROUTE_DEFAULT ? undefined : server[group]
  if (inherited != null) return inherited
  return group === 'health' ? undefined : defaultsOf(group)
}

function withoutGroup(route: Route, group: PolicyGroup): Route {
  // The route rules (rewrite, headers, ...) are not sub-resources here: they stay as they are.
  const out: Route = { name: route.name, filter: route.filter, upstreams: route.upstreams, fallbacks: route.fallbacks, ...rulesOf(route, 'route') }
  for (const g of POLICY_GROUPS) if (g !== group && route[g] !== undefined) copyGroup(out, route, g)
  return out
}

function copyGroup(to: Policy, from: Policy, g: PolicyGroup): void {
  if (g === 'health') to.health = from.health ?? null
  else if (g === 'passive' && from.passive !== undefined) to.passive = from.passive
  else if (g === 'retry' && from.retry !== undefined) to.retry = from.retry
  else if (g === 'limits' && from.limits !== undefined) to.limits = from.limits
}

function noCheck(server: Server, name: string): BalancerError {
  const where = name === ROUTE_DEFAULT ? `server "${server.address}"` : `route "${name}" on server "${server.address}"`
  return new BalancerError(ErrorCode.NotFound, `no active health check applies to ${where}; PUT one to add it`)
}
