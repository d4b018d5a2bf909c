// Composition root: flags, wiring, signals. Nothing imports this module.
//
//   admin API --write--> Control <--watch-- store
//                           ^  \--merge, coalesce, compile--> Engine | WorkerGroup
//   sources --discovered----+
//
// Control (src/control) owns desired state; docs/control-plane.md.

import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import module, { createRequire } from 'node:module'
import { isLoopback, parseOptions, usage } from './cli/options.ts'
import type { Options } from './cli/options.ts'
import { Control } from './control/control.ts'
import { planeViewOf } from './control/plane-view.ts'
import { engineTarget } from './control/reloader.ts'
import { hasRateLimit } from './model/rules.ts'
import type { ValidConfig } from './model/types.ts'
import { Presence } from './store/presence.ts'
import { Readiness } from './control/readiness.ts'
import type { ReadyState } from './control/readiness.ts'
import type { RunningSources } from './sources/start.ts'
import type { Refusal } from './sources/source.ts'
import { parseRegistryUrls } from './kv/registry-url.ts'
import type { Engine } from './engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from './engine/types.ts'
import { WorkerGroup } from './workers/group.ts'
import { TlsTarget } from './tls/target.ts'
import { StoredCerts } from './tls/stored.ts'
import { ChallengeBook } from './tls/acme/challenges.ts'
import { AcmeManager } from './tls/acme/manager.ts'
import { buildAdmin, startAdmin } from './admin/server.ts'
import { hostCheck } from './admin/host-check.ts'
import { listenReadySocket } from './admin/ready-socket.ts'
import { openStore } from './store/open.ts'
import type { ConfigStore } from './store/store.ts'
import { createLogger } from './observability/log.ts'
import type { Logger } from './observability/log.ts'
import { AccessLog } from './observability/access-log.ts'
import { Metrics } from './observability/metrics.ts'
import { startMetricsServer } from './observability/metrics-server.ts'
import { engineSampler, groupSampler } from './observability/sample.ts'
import { LiveView } from './observability/live-view.ts'
import { discoveredOrigins } from './observability/origins.ts'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }

function fail(msg: string): never {
  process.stderr.write(`balancer: ${msg}\n`)
  process.exit(2)
}

/** A token is required off loopback: the flag/env one, else the token file, else a new one printed once. */
function resolveToken(o: Options, store: ConfigStore, log: Logger): string | null {
  if (o.token !== null) return o.token
  if (o.tokenFile === null && isLoopback(o.apiHost)) return null
  const file = o.tokenFile ?? (store.kind === 'file' ? `${store.location}.token` : 'balancer.token')
  try {
    const t = readFileSync(file, 'utf8').trim()
    if (t.length >= 16) return t
  } catch {
    // No token file yet: generate one below.
  }
  const t = randomBytes(24).toString('base64url')
  writeFileSync(file, `${t}\n`, { mode: 0o600 })
  process.stderr.write(`balancer: generated admin API token (stored in ${file}): ${t}\n`)
  log.info({ file }, 'admin token generated')
  return t
}

/** A CA file's PEM (--upstream-ca, --acme-ca); a file that cannot be read or holds no certificate stops the start. */
function readPem(file: string, flag: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    fail(`${flag}: cannot read ${file}: ${(err as Error).message}`)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) fail(`${flag}: ${file} holds no PEM certificate`)
  return pem
}

async function main(): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2), process.env)
  if ('errors' in parsed) fail(`${parsed.errors.join('\n')}\n\n${usage()}`)
  const o = parsed
  if (o.help) {
    process.stdout.write(`${usage()}\n`)
    return
  }
  if (o.version) {
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  const log = createLogger(o.logLevel)
  const store = await openStore(o.store, process.env, (message) => log.warn(message))
  const token = resolveToken(o, store, log)

  let initial
  try {
    initial = await store.load()
  } catch (err) {
    fail(`cannot load the configuration from ${store.location}: ${(err as Error).message}`)
  }
  const engineOptions = {
    ...DEFAULT_ENGINE_OPTIONS,
    connectTimeoutMs: o.connectTimeoutMs,
    headersTimeoutMs: o.headersTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs,
    responseTimeoutMs: o.responseTimeoutMs,
    upstreamIdleMs: o.upstreamIdleMs,
    fdReserve: o.fdReserve ?? null,
    // One secret for every worker: a session ticket one issued resumes on any other.
    ticketSecret: randomBytes(32).toString('hex'),
    trustedProxies: o.trustedProxies,
    upstreamCa: o.upstreamCa === null ? '' : readPem(o.upstreamCa, '--upstream-ca'),
  }
  // One worker: the engine runs in this process, no IPC. More: engine
  // processes sharing the ports; the API, the store, discovery and the
  // compiler stay here.
  // Access log: with one process, written from here; with workers, each
  // worker writes its own lines through its own append-mode descriptor.
  const accessLogSpec = o.accessLog === null ? null : { target: o.accessLog, sample: o.accessLogSample }
  let accessLog: AccessLog | null = null
  let plane: Engine | WorkerGroup
  if (o.workers === 1) {
    if (accessLogSpec !== null) {
      accessLog = new AccessLog({
        ...accessLogSpec,
        onProblem: (err) => {
          if (err === null) log.info({ file: accessLogSpec.target }, 'access log writable again')
          else log.error({ err, file: accessLogSpec.target }, 'access log cannot be written; its lines are dropped and counted until it can')
        },
      })
    }
    // Loaded here only: with workers, the data plane's modules stay out of this process (about 10 MiB).
    const { Engine } = await import('./engine/engine.ts')
    plane = new Engine({ ...engineOptions, accessLog, log: log.child({ component: 'engine' }) })
  } else {
    const group = new WorkerGroup({ count: o.workers, engine: engineOptions, logLevel: o.logLevel, graceMs: o.graceMs, log: log.child({ component: 'workers' }), accessLog: accessLogSpec })
    try {
      await group.start()
    } catch (err) {
      group.kill()
      fail(`cannot start ${o.workers} workers: ${(err as Error).message}`)
    }
    plane = group
  }
  // Certificate files are read and checked before the configuration naming them is applied, and watched.
  const tls = new TlsTarget(plane instanceof WorkerGroup ? plane : engineTarget(plane), plane, log.child({ component: 'tls' }))
  // The discovery code (a Docker Engine API client with TLS, the registry
  // clients) is loaded only when a source is asked for.
  let sources: RunningSources = { origins: [], registries: [], stop: async () => {} }
  const registryUrls = parseRegistryUrls(o.registries)
  if ('errors' in registryUrls) fail(registryUrls.errors.map((e) => `--registry ${e}`).join('\n'))
  // Service references in the configuration decide which services each registry follows.
  const follow = (followed: ReadonlyMap<string, ReadonlySet<string>>): void => {
    for (const r of sources.registries) r.follow(followed.get(r.name) ?? [])
  }
  // Rate limits are for the whole cluster: while some route has one, the
  // instances sharing the store count each other (store/presence.ts).
  const sharing = limitSharing(store, o.workers, (n) => plane.setLimitShare(n), log.child({ component: 'presence' }))
  const target = {
    async apply(config: ValidConfig, version: number): Promise<void> {
      await tls.apply(config, version)
      sharing.want(hasRateLimit(config))
    },
  }
  const control = new Control({
    store,
    initial,
    target,
    onListenerError: (err) => log.error({ err }, 'a control-plane subscriber failed'),
    registries: registryUrls.map((u) => u.name),
    onFollow: (followed) => follow(followed),
  })
  // Each refusal by the merge (store discovery rules, claims) is logged once, when it first appears.
  let loggedRefusals = new Set<string>()
  const logRefusals = (): void => {
    const now = new Set<string>()
    for (const r of control.served().refused) {
      const key = `${r.origin}\n${r.name}\n${r.reason}`
      now.add(key)
      if (!loggedRefusals.has(key)) log.warn({ source: r.origin, name: r.name, reason: r.reason }, `${r.origin} ${JSON.stringify(r.name)} refused: ${r.reason}`)
    }
    loggedRefusals = now
  }
  // Subscribers of every applied or refused change: the log, the reload
  // counters of the metrics, and the dashboard's timeline (set once the API is built).
  const reloads = { applied: 0, refused: 0 }
  let live: LiveView | null = null
  control.subscribe((e) => {
    logRefusals()
    if (e.type === 'applied') {
      reloads.applied++
      log.info({ version: e.version, revision: e.revision, causes: e.causes }, 'configuration applied')
      live?.record('config', 'info', `configuration applied (version ${e.version})`)
      live?.changed()
    } else if (e.revision === null) {
      log.error({ error: e.error, store: store.location }, 'configuration in the store is invalid; the last good one keeps serving')
      live?.record('store', 'error', `configuration in the store is invalid: ${e.error.message}`)
    } else {
      reloads.refused++
      log.error({ error: e.error, revision: e.revision, causes: e.causes }, 'configuration refused; the last good one keeps serving')
      live?.record('config', 'error', `configuration refused, the last good one keeps serving: ${e.error.message}`)
    }
  })
  // Certificates kept in the store (uploaded, ACME): read before the first
  // snapshot is applied, then watched; every TLS listener may serve them.
  const tlsWatch = new AbortController()
  const sharedSpace = store.shared?.() ?? null
  let acme: AcmeManager | null = null
  const stored =
    sharedSpace === null
      ? null
      : new StoredCerts(sharedSpace, log.child({ component: 'tls' }), () => {
          void tls.push()
          acme?.storedChanged()
        })
  if (stored !== null && sharedSpace !== null) {
    tls.addSource(stored)
    await stored.start(tlsWatch.signal)
    // ACME: challenges every instance answers, and the orders (one instance at a time per certificate).
    const acmeLog = log.child({ component: 'acme' })
    const book = new ChallengeBook(sharedSpace, (c) => plane.setChallenges(c), acmeLog)
    await book.start(tlsWatch.signal)
    if (o.acmeDirectory !== null) {
      const manager = new AcmeManager({
        directory: { url: o.acmeDirectory, ca: o.acmeCa === null ? null : readPem(o.acmeCa, '--acme-ca') },
        space: sharedSpace,
        stored,
        book,
        log: acmeLog,
        retryMinMs: o.acmeRetryMs,
        defaultEmail: o.acmeEmail,
      })
      acme = manager
      tls.onApplied((config) => manager.setWanted(config))
    }
  }
  const first = await control.start()
  if (first.error !== null) {
    if (plane instanceof WorkerGroup) plane.kill()
    fail(`cannot apply the configuration: ${first.error.message}`)
  }
  const readiness = new Readiness()
  readiness.configApplied()

  const discoveryUp = new Map<string, boolean>()
  const discoveryHealth = new Map<string, { since: number; lastError: string | null }>()
  const discoveredNames = new Map<string, Set<string>>()
  // Containers and services the operator's constraints keep out, by source, for GET /status.
  const refusedBy = new Map<string, Refusal[]>()
  try {
    if (o.docker !== null || o.swarm || o.registries.length > 0)
      sources = (await import('./sources/start.ts')).startSources(
        o,
        log,
        (origin, servers, detail) => {
          // Containers or services joining and leaving, for the dashboard's timeline.
          const before = discoveredNames.get(origin) ?? new Set<string>()
          const now = new Set(detail.names)
          discoveredNames.set(origin, now)
          for (const n of now) if (!before.has(n)) live?.record('discovery', 'info', `${origin}: ${n} joined`)
          for (const n of before) if (!now.has(n)) live?.record('discovery', 'info', `${origin}: ${n} left`)
          refusedBy.set(origin, detail.refused ?? [])
          // Ready once each source's first set is served (an identical set changes nothing: ready once what is pending settled).
          const applied = control.discovered(origin, servers, detail.names, detail.meta ?? [], detail.services)
          if (applied === undefined) void control.settled().then(() => readiness.sourceApplied(origin))
          else
            void applied.then((out) => {
              if (out.error === null) readiness.sourceApplied(origin)
            })
        },
        (origin, err) => {
          if (discoveryUp.get(origin) !== (err === null)) {
            const prev = discoveryHealth.get(origin)
            discoveryHealth.set(origin, { since: Date.now(), lastError: err === null ? (prev?.lastError ?? null) : err.message })
            live?.record('discovery', err === null ? 'info' : 'error', err === null ? `${origin} in sync` : `${origin} failing: ${err.message}`)
          } else if (err !== null) discoveryHealth.set(origin, { since: discoveryHealth.get(origin)?.since ?? Date.now(), lastError: err.message })
          discoveryUp.set(origin, err === null)
          if (err === null) log.info({ source: origin }, 'discovery source in sync')
          else log.error({ source: origin, err }, 'discovery source failing; retrying with backoff')
        },
      )
  } catch (err) {
    fail((err as Error).message)
  }
  control.setSources(sources.origins)
  follow(control.followed())

  readiness.expect(sources.origins)

  const watching = new AbortController()
  control.follow(watching.signal)

  const sampler = plane instanceof WorkerGroup ? groupSampler(plane, accessLogSpec !== null) : engineSampler(plane, accessLog)
  const metrics = new Metrics(sampler, {
    configVersion: () => control.applied().version,
    reloads: () => reloads,
    refused: () => control.behind(),
    store: () => ({ kind: store.kind, up: (store.health?.().state ?? 'connected') === 'connected' }),
    discovery: () => sources.origins.map((source) => ({ source, up: discoveryUp.get(source) ?? false })),
  })
  const view = new LiveView({
    sampler,
    configVersion: () => control.applied().version,
    origins: () => discoveredOrigins(control.served(), store.kind),
    store: () => {
      const h = store.health?.()
      const err = control.lastError()
      return { name: `${store.kind} ${store.location}`, up: (h?.state ?? 'connected') === 'connected', since: h?.since ?? null, lastError: err === null ? (h?.detail ?? null) : err.message }
    },
    discovery: () =>
      sources.origins.map((name) => ({ name, up: discoveryUp.get(name) ?? false, since: discoveryHealth.get(name)?.since ?? null, lastError: discoveryHealth.get(name)?.lastError ?? null })),
  })
  live = view
  view.run(watching.signal)
  void view.once().catch(() => undefined)
  // Waits for first check results, not for passes: an upstream that is down
  // stays pending, and must not keep the balancer from being ready.
  const ready = (): ReadyState => readiness.state(() => plane.stats().upstreams.some((u) => u.checks.some((c) => c.lastAt === null)))
  const admin = await buildAdmin({
    control,
    plane: planeViewOf(plane),
    ...(stored === null ? {} : { certs: { stored, files: () => tls.files.status(), acme: () => acme?.status() ?? [] } }),
    token,
    // The --api host counts as a name the API is reached by when it is one
    // (IP literals are allowed anyway).
    hostNames: [...o.apiHostNames, o.apiHost],
    logger: false,
    metrics: () => metrics.render(),
    live: view,
    drain: (key, on) => plane.setDrained(key, on),
    writeLog: log.child({ component: 'admin' }),
    discovery: () => ({
      registries: sources.registries.map((r) => r.health()),
      refused: [...[...refusedBy].flatMap(([origin, list]) => list.map((r) => ({ origin, name: r.name, reason: r.reason }))), ...control.served().refused],
    }),
    ready,
  })
  const bound = await startAdmin(admin, o.apiHost, o.apiPort)
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | null = null
  if (o.metrics !== null) {
    try {
      // The same Host check as the API: a rebound page must not read the metrics either.
      const hosts = hostCheck([...o.apiHostNames, o.apiHost, o.metrics.host])
      metricsServer = await startMetricsServer(
        o.metrics.host,
        o.metrics.port,
        () => metrics.render(),
        (err) => log.error({ err }, 'metrics scrape failed'),
        (h) => hosts.refusal(h),
      )
    } catch (err) {
      fail(`cannot serve metrics on ${o.metrics.host}:${o.metrics.port}: ${(err as Error).message}`)
    }
    log.info({ metrics: `${o.metrics.host.includes(':') ? `[${o.metrics.host}]` : o.metrics.host}:${metricsServer.port}` }, 'metrics served without a token')
  }
  if (o.healthSocket !== null) {
    try {
      await listenReadySocket(o.healthSocket, ready)
    } catch (err) {
      fail(`--health-socket ${o.healthSocket}: ${(err as Error).message}`)
    }
  }
  log.info({ api: o.apiHost.includes(':') ? `[${o.apiHost}]:${bound.port}` : `${o.apiHost}:${bound.port}`, store: `${store.kind}:${store.location}`, auth: token !== null }, 'balancer started')
  // Every module the main process runs is loaded now: keep their compiled code for the next start (bin/balancer.js).
  module.flushCompileCache?.()

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      if (plane instanceof WorkerGroup) plane.kill()
      process.exit(1)
    }
    stopping = true
    readiness.draining()
    // Listeners stop accepting synchronously inside Engine.shutdown(), and
    // workers say when they have: anyone who reads "draining" in the log is
    // already refused.
    const drained = plane.shutdown(o.graceMs)
    watching.abort()
    tlsWatch.abort()
    acme?.stop()
    tls.close()
    void (async () => {
      if (plane instanceof WorkerGroup) await plane.refusing()
      log.info({ signal, graceMs: o.graceMs, workers: o.workers }, 'draining')
      const metricsClosed = new Promise<void>((resolve) => (metricsServer === null ? resolve() : metricsServer.server.close(() => resolve())))
      await Promise.allSettled([admin.close(), metricsClosed, sources.stop(), drained, sharing.stop().then(() => store.close())])
      await accessLog?.close()
      log.info({}, 'stopped')
      log.flush()
      process.exit(0)
    })()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // logrotate: the access log file was moved; open the path again.
  process.on('SIGUSR1', () => {
    if (accessLogSpec === null) return
    accessLog?.reopen()
    if (plane instanceof WorkerGroup) plane.reopenAccessLog()
    log.info({ file: accessLogSpec.target }, 'access log reopened')
  })
}

main().catch((err: unknown) => {
  process.stderr.write(`balancer: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})

/**
 * Runs the store's presence keys while `want(true)`: the engines then enforce
 * 1/(live instances x workers) of each rate limit. A store without a shared
 * space counts this instance alone.
 */
function limitSharing(store: ConfigStore, workers: number, setShare: (n: number) => void, log: Logger): { want(on: boolean): void; stop(): Promise<void> } {
  let running: { abort: AbortController; done: Promise<void> } | null = null
  return {
    want(on: boolean): void {
      if (on === (running !== null)) return
      if (!on) {
        const r = running
        running = null
        r?.abort.abort()
        setShare(workers)
        return
      }
      setShare(workers)
      const space = store.shared?.() ?? null
      if (space === null) return
      const presence = new Presence(space, {
        onCount: (n) => {
          setShare(n * workers)
          log.info({ instances: n, id: presence.id }, 'rate limits shared by the live instances')
        },
        onError: (err) => {
          if (err === null) log.info({}, 'presence keys written again')
          else log.error({ err }, 'presence keys cannot be written; rate limit shares stay as they were')
        },
      })
      const abort = new AbortController()
      running = { abort, done: presence.run(abort.signal) }
    },
    async stop(): Promise<void> {
      const r = running
      running = null
      r?.abort.abort()
      await r?.done
    },
  }
}
