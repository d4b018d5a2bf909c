// The admin REST API: construction and listening. Everything the API does is
// in the modules it wires here; see docs/api.md for the user's view.

import fastify from 'fastify'
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import type { Logger } from 'pino'
import type { Control } from '../control/control.ts'
import type { PlaneView } from '../control/plane-view.ts'
import { registerAccessChecks } from './access.ts'
import { registerBodyParsers } from './body.ts'
import { registerDocs } from './docs.ts'
import { registerErrorReplies } from './error-reply.ts'
import { hostCheck } from './host-check.ts'
import { registerWriteFlags } from './write-flags.ts'
import { registerWriteLog } from './write-log.ts'
import { readyRoute } from './ready.ts'
import type { ReadyState } from '../control/readiness.ts'
import { configRoutes } from './routes/config.ts'
import { filterRoutes } from './routes/filters.ts'
import { memberRoutes } from './routes/members.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { eventRoutes } from './routes/events.ts'
import { uiRoutes } from './routes/ui.ts'
import type { LiveView } from '../observability/live-view.ts'
import { policyRoutes } from './routes/policy.ts'
import { routeRoutes } from './routes/server-routes.ts'
import { serverRoutes } from './routes/servers.ts'
import { certRoutes } from './routes/certs.ts'
import type { CertCatalog } from '../tls/catalog.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'

export interface AdminOptions {
  /** The owner of desired state: what GETs show, where writes go. */
  control: Control
  /** Required as `Authorization: Bearer <token>` on every API request when non-null. */
  token: string | null
  /**
   * DNS names the API is reached by besides localhost and IP literals (the
   * --api host when it is a name, every --api-host); a request with any other
   * Host is refused (host-check.ts).
   */
  hostNames?: readonly string[]
  /** Largest accepted request body in bytes; default 1 MiB. */
  bodyLimit?: number
  logger: Logger | false
  /** Where each accepted write is logged once (write-log.ts); null: not logged. */
  writeLog?: Logger | null
  /**
   * The data plane's live state: GET /status shows it, and GET
   * /server/{address} and GET .../route/{name} show each member's under
   * `status`. Absent: the API runs without an engine.
   */
  plane?: PlaneView
  /** Fields the discovery sources add to GET /status's `discovery` (the registries' health). */
  discovery?: () => Record<string, unknown>
  /** GET /metrics: the Prometheus exposition text (observability/metrics.ts). */
  metrics?: () => Promise<string>
  /** The dashboard's live view, streamed at GET /events. */
  live?: LiveView
  /** Drains (on) or restores the upstream `host:port` in the data plane; false when it serves no such upstream. */
  drain?: (key: string, on: boolean) => boolean
  /** GET /ready's answer (src/control/readiness.ts); always 'ready' when not given. */
  ready?: () => ReadyState
  /** The certificates /cert shows and stores (the store's, and the files servers name); absent: /cert answers 503. */
  certs?: CertCatalog
}

export interface RouteEntry {
  method: string
  url: string
}

const routeTables = new WeakMap<FastifyInstance, RouteEntry[]>()

/** Every route registered on an app built by buildAdmin, as fastify saw it (HEAD and /docs included). */
export function listRoutes(app: FastifyInstance): readonly RouteEntry[] {
  return routeTables.get(app) ?? []
}

/** Builds the API; not yet listening (startAdmin) and still open to more plugins. */
export async function buildAdmin(opts: AdminOptions): Promise<FastifyInstance> {
  const bodyLimit = opts.bodyLimit ?? 1024 * 1024
  const app: FastifyInstance = opts.logger === false ? fastify({ logger: false, bodyLimit }) : (fastify({ loggerInstance: opts.logger, bodyLimit }) as unknown as FastifyInstance)

  const routes: RouteEntry[] = []
  routeTables.set(app, routes)
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url })
  })

  registerErrorReplies(app)
  registerAccessChecks(app, opts.token, hostCheck(opts.hostNames ?? []))
  registerWriteLog(app, opts.writeLog ?? null)
  registerWriteFlags(app)
  registerBodyParsers(app)
  registerDocs(app)

  const ctx = { control: opts.control, plane: opts.plane ?? null, discovery: opts.discovery ?? null }
  configRoutes(app, ctx)
  serverRoutes(app, ctx)
  memberRoutes(app, ctx)
  filterRoutes(app, ctx)
  routeRoutes(app, ctx)
  policyRoutes(app, ctx)
  metricsRoutes(app, opts.metrics)
  eventRoutes(app, opts.live, opts.drain)
  uiRoutes(app)
  readyRoute(app, opts.ready ?? (() => 'ready'))
  certRoutes(app, () => {
    if (opts.certs === undefined) throw new BalancerError(ErrorCode.StoreUnavailable, 'no store keeps certificates here')
    return opts.certs
  })
  return app
}

/**
 * Listens on host:port (port 0 picks a free one) and returns the bound
 * address. On Linux the port is bound with SO_REUSEPORT, like the data
 * plane's: a new balancer started beside the old one on the same host (a
 * Swarm `order: start-first` update on the host network) binds it too, and
 * the old one's socket leaves when it stops.
 */
export async function startAdmin(app: FastifyInstance, host: string, port: number): Promise<{ address: string; port: number }> {
  // fastify passes the options to net.Server.listen, which knows reusePort; fastify's type does not.
  const opts: FastifyListenOptions = { host, port, ...({ reusePort: process.platform === 'linux' } as object) }
  await app.listen(opts)
  const bound = app.server.address()
  if (bound === null || typeof bound === 'string') throw new Error(`admin API bound to an unexpected address: ${String(bound)}`)
  return { address: bound.address, port: bound.port }
}
