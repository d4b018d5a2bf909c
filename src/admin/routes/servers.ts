// GET|POST /server, GET|PUT|DELETE /server/{address}.

import type { FastifyInstance } from 'fastify'
import { canonicalServer } from '../../model/canonical.ts'
import { validationError } from '../../model/errors.ts'
import { normalizeServer } from '../../model/parse.ts'
import type { Server } from '../../model/types.ts'
import { serverUrl } from '../addressing.ts'
import { completeBody, withoutStatus } from '../body.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { exists, findServer, notFound, refuseDiscovered, requireServer, withServer, withoutServer } from '../edits.ts'
import { checkIfMatch, sendRead, sendTagged } from '../etag.ts'
import { liveUpstreams, membersStatus, serverRoutesOf } from '../live.ts'
import { checkServerFiles } from '../../tls/files.ts'
import { hasDiscovered, serverView, storedPartsOfServer, wantsStored } from '../origins.ts'

interface ServerParams {
  address: string
}

export function serverRoutes(app: FastifyInstance, ctx: AdminContext): void {
  // Every server: as served (discovered ones with their origin), or as stored.
  app.get('/server', async (req, reply) => {
    const stored = ctx.control.stored().config.servers
    if (wantsStored(req)) return sendRead(req, reply, { stored, served: stored, body: JSON.stringify(stored.map(canonicalServer)) })
    const served = ctx.control.served()
    const body = JSON.stringify(served.config.servers.map((s) => serverView(served, s)))
    return sendRead(req, reply, { stored, served: served.config.servers, body, live: served.origins.size > 0 })
  })

  app.post('/server', async (req, reply) => {
    const served = ctx.control.served()
    const raw = withoutStatus(req.body ?? {})
    const address = addressOf(raw)
    const server = normalizeServer(address === null ? raw : storedPartsOfServer(raw, served, address), 'body')
    await checkServerFiles(server.tls, 'body')
    const ifMatch = ifMatchHeader(req.headers)
    await commit(ctx, (cfg) => {
      const existing = findServer(cfg, server.address)
      checkIfMatch(ifMatch, existing, [cfg])
      if (existing !== undefined) throw exists(`server "${server.address}" already exists; PUT ${serverUrl(server.address)} replaces it`)
      return withServer(cfg, server)
    })
    reply.header('location', serverUrl(server.address))
    return sendTagged(req, reply, 201, server)
  })

  app.get<{ Params: ServerParams }>('/server/:address', async (req, reply) => {
    const { address } = req.params
    const stored = findServer(ctx.control.stored().config, address)
    const fromStore = wantsStored(req)
    const served = ctx.control.served()
    const server = fromStore ? stored : findServer(served.config, address)
    if (server === undefined) throw notFound(`server "${address}" not found`)
    const discovered = !fromStore && hasDiscovered(served, address)
    const live = liveUpstreams(ctx.plane)
    const view = discovered ? serverView(served, server) : canonicalServer(server)
    const body = live === null ? view : { ...view, status: membersStatus(serverRoutesOf(server), live) }
    return sendRead(req, reply, { stored, served: server, body: JSON.stringify(body), live: discovered || live !== null })
  })

  app.put<{ Params: ServerParams }>('/server/:address', async (req, reply) => {
    const { address } = req.params
    const served = ctx.control.served()
    const server = serverFromBody(storedPartsOfServer(withoutStatus(req.body), served, address), address)
    await checkServerFiles(server.tls, 'body')
    const ifMatch = ifMatchHeader(req.headers)
    let created = false
    await commit(ctx, (cfg, now) => {
      const existing = findServer(cfg, address)
      if (existing === undefined) refuseDiscovered(now, address)
      checkIfMatch(ifMatch, existing, [cfg])
      created = existing === undefined
      return withServer(cfg, server)
    })
    if (created) reply.header('location', serverUrl(address))
    return sendTagged(req, reply, created ? 201 : 200, server)
  })

  app.delete<{ Params: ServerParams }>('/server/:address', async (req, reply) => {
    const { address } = req.params
    const ifMatch = ifMatchHeader(req.headers)
    await commit(ctx, (cfg, served) => {
      const existing = requireServer(cfg, address, served)
      checkIfMatch(ifMatch, existing, [cfg])
      return withoutServer(cfg, address)
    })
    return reply.code(204).send()
  })
}

/** The address a POST body names, if it names one plainly (for telling discovered parts in it apart). */
function addressOf(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null
  const v = Object.entries(raw as Record<string, unknown>).find(([k]) => k.toLowerCase() === 'address')?.[1]
  return typeof v === 'string' ? v.trim() : null
}

/** The body's address may be omitted (taken from the URL); if given it must be the same string. */
function serverFromBody(body: unknown, address: string): Server {
  const server = normalizeServer(completeBody(body, { address }), 'body')
  if (server.address !== address) {
    throw validationError([{ path: 'body.address', message: `must match the address in the URL "${address}", got "${server.address}"` }])
  }
  return server
}
