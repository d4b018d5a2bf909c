// Starts the discovery sources the flags ask for (--docker, --swarm,
// --registry) and owns
// their loops: one AbortController for all, stop() aborts and waits for them.
// Each source's transient errors go to onReport (the caller logs them once);
// label problems are logged here, once each time the set of them changes.

import type { Logger } from '../observability/log.ts'
import type { Server } from '../model/types.ts'
import { DockerClient } from '../docker-api/client.ts'
import { DEFAULT_DOCKER_ENDPOINT, DOCKER_FROM_ENV, loadTls, parseEndpoint } from '../docker-api/endpoint.ts'
import type { Constraint } from '../model/constraint.ts'
import type { DiscoverySource, PublishDetail } from './source.ts'
import { DockerSource } from './docker/source.ts'
import { SwarmSource } from './swarm/source.ts'
import type { RegistrySource } from './registry-source.ts'
import { openRegistry } from './registry-open.ts'
import { parseRegistryUrls } from '../kv/registry-url.ts'

export interface SourceOptions {
  /** Endpoint for container discovery; null: off. */
  docker: string | null
  swarm: boolean
  dockerResyncMs: number
  /** Service registry URLs (--registry), each optionally `NAME=URL`. */
  registries?: readonly string[]
  dockerConstraint?: Constraint | null
  swarmConstraint?: Constraint | null
}

export interface RunningSources {
  /** Origins started, e.g. ['docker', 'swarm']; empty when discovery is off. */
  origins: string[]
  /** The service registries started, to be told which services to follow and asked for their health. */
  registries: RegistrySource[]
  /** Aborts every source and resolves when their loops have ended. */
  stop(): Promise<void>
}

/**
 * Throws (before anything starts) on an unusable endpoint or unreadable TLS
 * files. onPublish gets each source's whole current set: servers plus, in
 * detail, names[i] (the container/service of servers[i], for
 * mergeDiscovered's `names`) and the label problems (for display; already
 * logged here).
 */
export function startSources(
  opts: SourceOptions,
  log: Logger,
  onPublish: (origin: string, servers: Server[], detail: PublishDetail) => void,
  onReport: (origin: string, err: Error | null) => void,
  env: Readonly<Record<string, string | undefined>> = process.env,
): RunningSources {
  const urls = parseRegistryUrls(opts.registries ?? [])
  if ('errors' in urls) throw new Error(urls.errors.map((e) => `--registry ${e}`).join('; '))
  const registries = urls.map((u) => openRegistry(u, env))
  const sources: DiscoverySource[] = []
  let client: DockerClient | null = null
  let endpoint: string | null = null
  if (opts.docker !== null || opts.swarm) {
    const given = opts.docker === DOCKER_FROM_ENV ? null : opts.docker
    const fromEnv = given === null
    const text = given ?? (env.DOCKER_HOST || DEFAULT_DOCKER_ENDPOINT)
    const parsed = parseEndpoint(text, env)
    if ('error' in parsed) throw new Error(`${fromEnv && env.DOCKER_HOST ? 'DOCKER_HOST' : '--docker'}: ${parsed.error}`)
    client = new DockerClient({ endpoint: loadTls(parsed, env) })
    endpoint = parsed.text
    const resyncMs = Math.max(1000, opts.dockerResyncMs)
    if (opts.docker !== null) sources.push(new DockerSource({ client, resyncMs, constraint: opts.dockerConstraint ?? null }))
    if (opts.swarm) sources.push(new SwarmSource({ client, resyncMs, constraint: opts.swarmConstraint ?? null }))
  }
  sources.push(...registries)
  if (sources.length === 0) return { origins: [], registries: [], stop: async () => {} }

  const ctl = new AbortController()
  const loops = sources.map((s) => {
    const slog = log.child({ source: s.name })
    let lastProblems = '[]'
    // Each refusal is logged once, when it first appears.
    let lastRefused = new Set<string>()
    const publish = (servers: Server[], detail: PublishDetail): void => {
      const key = JSON.stringify(detail.problems)
      if (key !== lastProblems) {
        lastProblems = key
        for (const p of detail.problems) slog.warn({ at: p.path }, p.message)
      }
      const list = detail.refused ?? []
      const refused = new Set(list.map((r) => `${r.name}\n${r.reason}`))
      for (const r of list) if (!lastRefused.has(`${r.name}\n${r.reason}`)) slog.warn({ name: r.name, reason: r.reason }, `${s.name} ${JSON.stringify(r.name)} refused: ${r.reason}`)
      lastRefused = refused
      onPublish(s.name, servers, detail)
    }
    return s.run(ctl.signal, publish, (err) => onReport(s.name, err)).catch((err: unknown) => onReport(s.name, err instanceof Error ? err : new Error(String(err))))
  })
  log.info(
    { sources: sources.map((s) => s.name), ...(endpoint === null ? {} : { endpoint }), ...(registries.length === 0 ? {} : { registries: registries.map((r) => `${r.name}=${r.location}`) }) },
    'discovery started',
  )
  return {
    origins: sources.map((s) => s.name),
    registries,
    async stop() {
      ctl.abort()
      await Promise.allSettled(loops)
      client?.close()
    },
  }
}
