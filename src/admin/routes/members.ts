// Upstreams and fallbacks, which share one shape of routes:
//   GET|POST|PUT|DELETE /server/{address}/{upstream|fallback}/{target}-{port}
//   GET|POST|PUT|DELETE /server/{address}/route/{name}/{upstream|fallback}/{target}-{port}
// The first form is the second with name = default.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { validationError } from '../../model/errors.ts'
import type { Problem } from '../../model/errors.ts'
import { normalizeUpstream } from '../../model/parse.ts'
import { ROUTE_DEFAULT, upstreamKey } from '../../model/types.ts'
import type { Upstream } from '../../model/types.ts'
import { parseMemberKey, pathSegment, routeBase } from '../addressing.ts'
import type { MemberRef } from '../addressing.ts'
import { completeBody } from '../body.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { exists, findRoute, notFound, requireRoute, requireServer, sameMember, withRoute, withServer } from '../edits.ts'
import type { MemberList } from '../edits.ts'
import { checkIfMatch, sendRead, sendTagged } from '../etag.ts'
import { lookupServer, memberView, withoutOrigin } from '../origins.ts'
import { describePart, originOf, readOnlyError } from '../../control/provenance.ts'

interface MemberParams {
  address: string
  name?: string
  member: string
}
type Req = FastifyRequest<{ Params: MemberParams }>

const KINDS = [
  { segment: 'upstream', list: 'upstreams' },
  { segment: 'fallback', list: 'fallbacks' },
] as const satisfies ReadonlyArray<{ segment: string; list: MemberList }>

export function memberRoutes(app: FastifyInstance, ctx: AdminContext): void {
  for (const { segment, list } of KINDS) {
    for (const base of ['/server/:address', '/server/:address/route/:name']) {
      const url = `${base}/${segment}/:member`
      const describe = (p: MemberParams): string => `${segment} "${p.member}" of route "${p.name ?? ROUTE_DEFAULT}" on server "${p.address}"`

      app.get<{ Params: MemberParams }>(url, async (req, reply) => {
        const ref = parseMemberKey(req.params.member)
        const name = req.params.name ?? ROUTE_DEFAULT
        const l = lookupServer(ctx.control, req, req.params.address)
        const found = requireRoute(l.shown, name)[list].find((u) => sameMember(u, ref))
        if (found === undefined) throw notFound(`${describe(req.params)} not found`)
        const storedRoute = l.stored === undefined ? undefined : findRoute(l.stored, name)
        const stored = storedRoute?.[list].find((u) => sameMember(u, ref))
        const view = l.fromStore ? found : memberView(l.served, req.params.address, name, list, found)
        return sendRead(req, reply, { stored, served: found, body: JSON.stringify(view), live: !l.fromStore && stored === undefined })
      })

      const write = (createOnly: boolean) => async (req: Req, reply: FastifyReply) => {
        const { address, member: key } = req.params
        const name = req.params.name ?? ROUTE_DEFAULT
        const ref = parseMemberKey(key)
        const member = memberFromBody(withoutOrigin(req.body), ref)
        const ifMatch = ifMatchHeader(req.headers)
        let created = false
        // Adding the target of a member discovery serves here would take it over: the write refuses that (E_READ_ONLY).
        await commit(ctx, (cfg, served) => {
          const server = requireServer(cfg, address, served)
          const route = requireRoute(server, name, served)
          const i = route[list].findIndex((u) => sameMember(u, ref))
          const existing = route[list][i]
          checkIfMatch(ifMatch, existing, [route, server, cfg])
          if (existing !== undefined && createOnly) throw exists(`${describe(req.params)} already exists; PUT replaces it`)
          created = existing === undefined
          const members = existing === undefined ? [...route[list], member] : route[list].with(i, member)
          return withServer(cfg, withRoute(server, { ...route, [list]: members }))
        })
        if (created) {
          reply.header('location', `${routeBase(address, req.params.name)}/${segment}/${pathSegment(upstreamKey(member))}`)
        }
        return sendTagged(req, reply, created ? 201 : 200, member)
      }
      app.post<{ Params: MemberParams }>(url, write(true))
      app.put<{ Params: MemberParams }>(url, write(false))

      app.delete<{ Params: MemberParams }>(url, async (req, reply) => {
        const ref = parseMemberKey(req.params.member)
        const ifMatch = ifMatchHeader(req.headers)
        await commit(ctx, (cfg, served) => {
          const server = requireServer(cfg, req.params.address, served)
          const name = req.params.name ?? ROUTE_DEFAULT
          const route = requireRoute(server, name, served)
          const existing = route[list].find((u) => sameMember(u, ref))
          if (existing === undefined) {
            const origin = originOf(served, server.address, name, list, { Target: ref.target, Port: ref.port })
            if (origin !== null) throw readOnlyError(describePart(server.address, name, list, { Target: ref.target, Port: ref.port }), origin, 'path.member')
            throw notFound(`${describe(req.params)} not found`)
          }
          checkIfMatch(ifMatch, existing, [route, server, cfg])
          const members = route[list].filter((u) => u !== existing)
          return withServer(cfg, withRoute(server, { ...route, [list]: members }))
        })
        return reply.code(204).send()
      })
    }
  }
}

/** Target and Port may be left out of the body (the URL gives them); if present they must agree with it. */
function memberFromBody(body: unknown, ref: MemberRef): Upstream {
  const u = normalizeUpstream(completeBody(body, { Target: ref.target, Port: ref.port }), 'body')
  const problems: Problem[] = []
  if (u.Target.toLowerCase() !== ref.target.toLowerCase()) {
    problems.push({ path: 'body.Target', message: `must match the target in the URL "${ref.target}", got "${u.Target}"` })
  }
  if (u.Port !== ref.port) {
    problems.push({ path: 'body.Port', message: `must match the port in the URL ${ref.port}, got ${u.Port}` })
  }
  if (problems.length > 0) throw validationError(problems)
  return u
}
