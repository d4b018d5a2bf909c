// POST /server, GET|PUT|DELETE /server/{address}.

import type { FastifyInstance } from 'fastify'
import { validationError } from '../../model/errors.ts'
import { normalizeServer } from '../../model/parse.ts'
import type { Server } from '../../model/types.ts'
import { serverUrl } from '../addressing.ts'
import { completeBody, withoutStatus } from '../body.ts'
import { commit, ifMatchHeader } from '../context.ts'
import type { AdminContext } from '../context.ts'
import { exists, findServer, notFound, requireServer, withServer, withoutServer } from '../edits.ts'
import { checkIfMatch, sendTagged } from '../etag.ts'
import { liveUpstreams, membersStatus, serverRoutesOf } from '../live.ts'
import { checkServerFiles } from '../../tls/files.ts'

interface ServerParams {
  address: string
}

export function serverRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.post('/server', async (req, reply) => {
    const server = normalizeServer(withoutStatus(req.body ?? {}), 'body')
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
    const server = requireServer(ctx.control.stored().config, req.params.address)
    const live = liveUpstreams(ctx.plane)
    if (live === null) return sendTagged(req, reply, 200, server)
    const body = { ...server, status: membersStatus(serverRoutesOf(server), live) }
    return sendTagged(req, reply, 200, server, JSON.stringify(body), true)
  })

  app.put<{ Params: ServerParams }>('/server/:address', async (req, reply) => {
    const { address } = req.params
    const server = serverFromBody(req.body, address)
    await checkServerFiles(server.tls, 'body')
    const ifMatch = ifMatchHeader(req.headers)
    let created = false
    await commit(ctx, (cfg) => {
      const existing = findServer(cfg, address)
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
    await commit(ctx, (cfg) => {
      const existing = findServer(cfg, address)
      if (existing === undefined) throw notFound(`server "${address}" not found`)
      checkIfMatch(ifMatch, existing, [cfg])
      return withoutServer(cfg, address)
    })
    return reply.code(204).send()
  })
}

/** The body's address may be omitted (taken from the URL); if given it must be the same string. */
function serverFromBody(body: unknown, address: string): Server {
  const server = normalizeServer(completeBody(withoutStatus(body), { address }), 'body')
  if (server.address !== address) {
    throw validationError([
      { path: 'body.address', message: `must match the address in the URL "${address}", got "${server.address}"` },
    ])
  }
  return server
}
