// An engine worker: a child process forked by the primary (group.ts) that
// runs one Engine and applies what the primary sends. It opens the same
// listening addresses as its siblings (SO_REUSEPORT, set in listener.ts), so
// the kernel spreads new connections over the workers.
//
// The primary owns the process's life: SIGINT and SIGTERM are ignored here
// (a Ctrl-C reaches the whole process group; the primary then asks every
// worker to drain), and a worker whose primary is gone (IPC channel closed)
// drains and exits on its own.
//
// A worker loads what the data plane needs and nothing else: the engine, the
// compiler, a line logger (observability/line-log.ts) instead of pino, and
// the access log's writer only when one is asked for.

import { compile } from '../compiler/compile.ts'
import { Engine } from '../engine/engine.ts'
import { loadedParts } from '../engine/parts.ts'
import type { RoutingSnapshot } from '../compiler/snapshot.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { createLineLogger } from '../observability/line-log.ts'
import type { LineLogger } from '../observability/line-log.ts'
import type { AccessLog } from '../observability/access-log.ts'
import type { CheckResult } from '../health/checker.ts'
import type { ConfigEdit, FromWorker, ToWorker, WireError } from './protocol.ts'
import { StatsSender } from './stats-delta.ts'
import { settleOnce } from './settle.ts'
import type { ValidConfig } from '../model/types.ts'

const send = (m: FromWorker): void => {
  if (process.connected) process.send?.(m)
}

let engine: Engine | null = null
let log: LineLogger | null = null
/** The snapshot served, the config it was compiled from and its version (what a ConfigEdit is based on). */
interface Held {
  snap: RoutingSnapshot
  config: ValidConfig
  version: number
}
let current: Held | null = null
/** What was served before each apply still open to a rollback (only the latest is kept). */
let before: { seq: number; held: Held | null } | null = null
let stopping = false
let ticker: NodeJS.Timeout | null = null
let graceMs = 30_000
let accessLog: AccessLog | null = null
/** What the primary holds of this worker's figures: stats go as deltas of it. */
const figures = new StatsSender()

let partsFlushed = 0

/** node:module taken by its module object: an ES import builds its namespace, which loads the source-map code. */
function flushCompileCache(): void {
  process.getBuiltinModule('node:module').flushCompileCache?.()
}

function wire(err: unknown): WireError {
  if (err instanceof BalancerError) return { code: err.code, message: err.message, problems: err.problems }
  return { code: ErrorCode.Internal, message: err instanceof Error ? err.message : String(err), problems: [] }
}

async function onMessage(m: ToWorker): Promise<void> {
  switch (m.t) {
    case 'init': {
      graceMs = m.graceMs
      log = createLineLogger(m.logLevel, { worker: m.id })
      const l = log
      if (m.accessLog !== null) {
        const { AccessLog } = await import('../observability/access-log.ts')
        accessLog = new AccessLog({
          ...m.accessLog,
          onProblem: (err) => {
            if (err === null) l.info({ file: m.accessLog?.target }, 'access log writable again')
            else l.error({ err, file: m.accessLog?.target }, 'access log cannot be written; its lines are dropped and counted until it can')
          },
        })
      }
      // One worker runs the active checks; the others adopt its results (health/checker.ts).
      const checks = m.probes ? { checks: 'probe' as const, onCheck: (result: CheckResult) => send({ t: 'check', result }) } : { checks: 'follow' as const }
      engine = new Engine({ ...m.engine, ...checks, accessLog, log: log.child({ component: 'engine' }) })
      const e = engine
      ticker = setInterval(() => send({ t: 'stats', stats: figures.delta(e.stats()) }), m.statsMs)
      send({ t: 'ready' })
      // Every module a worker runs at start is loaded now: keep their compiled code for the next start (bin/balancer.js).
      flushCompileCache()
      return
    }
    case 'apply': {
      if (engine === null) throw new Error('apply before init')
      try {
        const config = 'edit' in m ? edited(m.edit) : m.config
        // From the served snapshot: with an edit's kept servers (the same objects), a compile by difference.
        const snap = compile(config, m.version, current?.snap)
        await engine.apply(snap)
        before = { seq: m.seq, held: current }
        current = { snap, config, version: m.version }
        send({ t: 'applied', seq: m.seq, stats: figures.applied(engine, snap) })
        // The engine's parts load with the first snapshot that needs them (engine/parts.ts): their code is kept too.
        if (loadedParts() !== partsFlushed) {
          partsFlushed = loadedParts()
          flushCompileCache()
        }
        setImmediate(settleOnce)
      } catch (err) {
        send({ t: 'refused', seq: m.seq, error: wire(err) })
      }
      return
    }
    case 'certs': {
      if (engine === null) throw new Error('certs before init')
      try {
        engine.setCertificates(m.certs)
      } catch (err) {
        // The primary checked them; an apply needing a missing one is refused and says so.
        log?.error({ err }, 'certificates refused')
      }
      return
    }
    case 'challenges': {
      if (engine === null) throw new Error('challenges before init')
      engine.setChallenges(m.challenges)
      return
    }
    case 'rollback': {
      if (engine === null) throw new Error('rollback before init')
      if (before !== null && before.seq === m.seq) {
        const prev = before.held
        before = null
        // Re-applying the previous snapshot object binds nothing new (its
        // listeners are all still open or draining): it cannot fail on a port.
        // With no previous snapshot, an empty one closes what the refused apply opened.
        const target = prev?.snap ?? { version: 0, listeners: new Map(), targets: new Map() }
        try {
          await engine.apply(target)
          current = prev
        } catch (err) {
          log?.error({ err }, 'rollback failed')
        }
      }
      send({ t: 'applied', seq: m.seq, stats: figures.delta(engine.stats()) })
      return
    }
    case 'sample': {
      if (engine === null) throw new Error('sample before init')
      const cpu = process.cpuUsage()
      const stats = engine.stats()
      // Whole figures: the primary takes them as the base of the next delta.
      figures.reset(stats)
      send({
        t: 'sample',
        seq: m.seq,
        sample: {
          stats,
          traffic: engine.traffic(),
          rssBytes: process.memoryUsage.rss(),
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          logLines: accessLog?.lines ?? 0,
          logDropped: accessLog?.dropped ?? 0,
        },
      })
      return
    }
    case 'reopen':
      accessLog?.reopen()
      return
    case 'drain':
      engine?.setDrained(m.key, m.on)
      return
    case 'checks':
      engine?.adoptChecks(m.results)
      return
    case 'share':
      engine?.setLimitShare(m.n)
      return
    case 'shutdown':
      stop(m.graceMs)
      return
  }
}

/** The config a ConfigEdit describes, with the held config's own server objects for the servers it keeps. */
function edited(edit: ConfigEdit): ValidConfig {
  const held = current
  if (held === null || held.version !== edit.base) throw new BalancerError(ErrorCode.Internal, `worker holds configuration ${held?.version ?? 'none'}, the edit is of ${edit.base}`)
  const servers = edit.servers.map((s) => {
    if (typeof s !== 'number') return s
    const kept = held.config.servers[s]
    if (kept === undefined) throw new BalancerError(ErrorCode.Internal, `the edit keeps server ${s}, the held configuration has ${held.config.servers.length}`)
    return kept
  })
  // The primary's parser checked every server; the kept ones are the held config's own (checked when it came).
  return { servers } as ValidConfig
}

function stop(grace: number): void {
  if (stopping) return
  stopping = true
  if (ticker !== null) clearInterval(ticker)
  if (engine === null) process.exit(0)
  // shutdown() stops accepting synchronously: the primary may say "draining" once told.
  const drained = engine.shutdown(grace)
  send({ t: 'refusing' })
  void drained.then(async () => {
    await accessLog?.close()
    log?.info({}, 'worker stopped')
    log?.flush()
    if (process.connected) process.disconnect?.()
    process.exit(0)
  })
}

process.on('message', (m: ToWorker) => {
  onMessage(m).catch((err: unknown) => {
    log?.fatal({ err }, 'worker failed')
    log?.flush()
    process.exit(1)
  })
})
process.on('disconnect', () => {
  log?.warn({}, 'primary gone; draining')
  stop(graceMs)
})
process.on('SIGINT', () => undefined)
process.on('SIGTERM', () => undefined)
