// The worker group: N engine processes that serve the same snapshot on the
// same ports (SO_REUSEPORT), driven by the primary, which keeps the admin
// API, the store, discovery and the compiler. It stands where the Engine
// stands for the Reloader: apply() resolves once every worker applied the
// snapshot, and rejects with the refusing worker's error (E_LISTEN when a
// port is taken) after every worker that did apply it went back to the
// snapshot it served before, so a refused change is applied nowhere.
//
// Processes, not worker threads: a worker that crashes, runs out of heap or
// is killed takes only itself down, never the API or the other workers; each
// has its own heap and garbage collector, so one busy worker's pauses do not
// stall the others; and an operator can see and signal each one. Threads
// start a little faster (measured to ready: about 100 ms for a thread, 125 ms
// for a process) and share memory, but the engines share nothing anyway, and
// a worker starts once per process life or crash.
//
// Stats: GET /status is synchronous, so each worker pushes its EngineStats
// every statsMs (and with every apply answer), by difference from its
// previous push (stats-delta.ts); stats() merges the latest.
//
// Active health checks run in one worker (slot 0, and its replacement): it
// reports every completed check, and the primary hands each result to the
// other workers, which probe nothing and adopt it (health/checker.ts). So an
// upstream sees one probe per interval whatever --workers is. The primary
// keeps the latest result of each pair and hands them all again to every
// follower after each apply (a pair's first check may finish before a
// follower holds the pair) and to a replacement that joins.

import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import type { AcmeChallenges, CertEntry, EngineStats } from '../engine/types.ts'
import type { ValidConfig } from '../model/types.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Logger } from '../observability/log.ts'
import type { FromWorker, ToWorker, WireError, WorkerAccessLog, WorkerEngineOptions, WorkerSample } from './protocol.ts'
import { configEdit } from './protocol.ts'
import { EMPTY_STATS, mergeStats } from './stats.ts'
import { StatsReceiver } from './stats-delta.ts'
import { pairId } from '../health/checker.ts'
import type { CheckResult } from '../health/checker.ts'

const WORKER_MODULE = new URL('./worker.ts', import.meta.url)

/**
 * A worker's Node flags: the main process's, less a debugger port the
 * workers would fight over, and V8's young generation capped at 1 MiB per
 * semi-space unless the operator chose a size. V8 otherwise grows it to
 * tens of MiB under load and keeps it: with 10,000 idle keep-alive clients
 * that is a third of a worker's memory for them (2.65 -> 1.78 KiB per
 * connection), and at rest 1.5 MiB per worker. CPU per request measured
 * the same with and without (docs/performance.md, "Memory at rest").
 * And `--expose-gc`: a worker runs one memory-reducing collection once it
 * has started (settle.ts).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string): string[] {
  const out = execArgv.filter((a) => !a.startsWith('--inspect'))
  const given = (re: RegExp): boolean => out.some((a) => re.test(a)) || nodeOptions.split(/\s+/).some((a) => re.test(a))
  if (!given(/^--max[-_]semi[-_]space[-_]size(=|$)/)) out.push('--max-semi-space-size=1')
  if (!given(/^--expose[-_]gc$/)) out.push('--expose-gc')
  return out
}

/** A worker that does not answer a sample request within this is left out of that sample. */
const SAMPLE_TIMEOUT_MS = 2000
/** A worker that answers neither `ready` nor an apply within this is killed and replaced. */
const ANSWER_TIMEOUT_MS = 30_000
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 5_000
/** The slot whose worker runs the active health checks. */
const PROBER = 0

export interface WorkerGroupOptions {
  count: number
  engine: WorkerEngineOptions
  logLevel: string
  /** Drain time a worker uses when its primary disappears. */
  graceMs: number
  log: Logger
  /** Stats push period; default 500 ms. */
  statsMs?: number
  /** Each worker writes its own access log lines (its own descriptor, append mode); null: off. */
  accessLog?: WorkerAccessLog | null
}

export interface WorkerStatus {
  id: number
  pid: number | null
  /** Started and serving the group's snapshot. */
  serving: boolean
  restarts: number
  snapshotVersion: number
  inFlight: number
  connections: number
  /** Requests this worker sent upstream since it started. */
  requests: number
}

/** An apply for a worker: an edit of the config it holds, or the whole config when it holds none. */
function applyMessage(seq: number, holds: { config: ValidConfig; version: number } | null, config: ValidConfig, version: number): ToWorker & { seq: number } {
  if (holds === null) return { t: 'apply', seq, config, version }
  return { t: 'apply', seq, edit: configEdit(holds.config, holds.version, config), version }
}

/** The worker is gone (exited, or killed for not answering): not a refusal. */
class WorkerGone extends Error {}

interface Pending {
  resolve(m: FromWorker): void
  reject(err: Error): void
}

class Slot {
  readonly id: number
  proc: ChildProcess | null = null
  serving = false
  /** The worker's figures, rebuilt from the deltas it sends (stats-delta.ts); a new one per process. */
  figures = new StatsReceiver()
  /** The config this worker serves and its version (what the next apply is sent as an edit of); null: none known. */
  holds: { config: ValidConfig; version: number } | null = null
  restarts = 0
  /** Consecutive crashes, for the restart backoff; reset once a worker has run a while. */
  crashes = 0
  startedAt = 0
  exited: Promise<void> = Promise.resolve()
  readonly pending = new Map<number, Pending>()
  /** Sample requests waiting for their answer, by seq. */
  readonly samples = new Map<number, (s: WorkerSample | null) => void>()
  onReady: (() => void) | null = null
  onRefusing: (() => void) | null = null

  constructor(id: number) {
    this.id = id
  }

  /** The worker's latest figures (at most statsMs old). */
  get stats(): EngineStats {
    return this.figures.stats() ?? EMPTY_STATS
  }
}

export class WorkerGroup {
  readonly #o: WorkerGroupOptions
  readonly #slots: Slot[]
  #queue: Promise<void> = Promise.resolve()
  /** The last config every serving worker applied, and its version: what a replacement starts with. */
  #current: { config: ValidConfig; version: number } | null = null
  #seq = 0
  /** The certificates every worker holds: sent to each, and to a replacement before its first apply. */
  #certs: CertEntry[] = []
  #challenges: AcmeChallenges = { http01: [], tlsAlpn01: [] }
  #stopping = false
  #stopped: Promise<void> | null = null
  #refusing: Promise<void> | null = null
  /** Upstreams an operator drained: told to every worker, and to a restarted one. */
  readonly #drained = new Set<string>()
  /** The latest check result of every pair the probing worker runs, by pairId. */
  readonly #checks = new Map<string, CheckResult>()
  /** Engines enforcing the rate limits together (setLimitShare); a restarted worker gets it too. */
  #limitShare = 1

  constructor(o: WorkerGroupOptions) {
    this.#o = o
    this.#slots = Array.from({ length: o.count }, (_, i) => new Slot(i))
  }

  /** Forks every worker and resolves when all are ready (serving nothing yet). */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((s) => this.#spawn(s)))
    for (const s of this.#slots) s.serving = true
  }

  /** Sends the certificates to every worker; the IPC channel keeps them ahead of any apply sent after. */
  setCertificates(entries: readonly CertEntry[]): void {
    this.#certs = [...entries]
    for (const s of this.#slots) s.proc?.send({ t: 'certs', certs: this.#certs } satisfies ToWorker)
  }

  /** Sends the pending ACME challenges to every worker (and to a replacement when it starts). */
  setChallenges(c: AcmeChallenges): void {
    this.#challenges = c
    for (const s of this.#slots) s.proc?.send({ t: 'challenges', challenges: c } satisfies ToWorker)
  }

  /** Sends config to every worker, which compiles it as snapshot `version`; resolves once all serve it. */
  apply(config: ValidConfig, version: number): Promise<void> {
    const run = this.#queue.then(() => this.#apply(config, version))
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #apply(config: ValidConfig, version: number): Promise<void> {
    if (this.#stopping) throw new BalancerError(ErrorCode.Internal, 'the workers are shutting down; no snapshot can be applied')
    const seq = ++this.#seq
    const targets = this.#slots.filter((s) => s.serving)
    const held = targets.map((s) => s.holds)
    const answers = await Promise.allSettled(targets.map((s) => this.#request(s, applyMessage(seq, s.holds, config, version))))
    const applied: Slot[] = []
    let refusal: WireError | null = null
    answers.forEach((a, i) => {
      const s = targets[i] as Slot
      if (a.status === 'rejected') return // gone: its replacement starts with the group's snapshot
      if (a.value.t === 'applied') {
        applied.push(s)
        s.holds = { config, version }
        if (s.id === PROBER) this.#pruneChecks(s.stats)
      } else if (a.value.t === 'refused') refusal ??= a.value.error
    })
    if (refusal !== null) {
      const err = refusal as WireError
      if (applied.length > 0) {
        this.#o.log.warn({ version, applied: applied.map((s) => s.id), code: err.code }, 'a worker refused the snapshot; the workers that applied it go back')
        await Promise.allSettled(
          applied.map((s) => {
            s.holds = held[targets.indexOf(s)] ?? null
            return this.#request(s, { t: 'rollback', seq })
          }),
        )
      }
      throw new BalancerError(toCode(err.code), err.message, err.problems)
    }
    this.#current = { config, version }
    this.#handChecks(this.#slots.filter((s) => s.id !== PROBER))
  }

  /** Every known check result, to workers that follow (they ignore what they do not hold, or hold newer). */
  #handChecks(to: readonly Slot[]): void {
    if (this.#checks.size === 0) return
    const results = [...this.#checks.values()]
    for (const s of to) if (s.id !== PROBER) s.proc?.send({ t: 'checks', results } satisfies ToWorker)
  }

  /** Forgets the results of pairs the probing worker no longer runs (its stats list every pair it runs). */
  #pruneChecks(stats: EngineStats): void {
    const live = new Set<string>()
    for (const u of stats.upstreams) for (const c of u.checks) live.add(pairId(u.key, c.probe))
    for (const id of this.#checks.keys()) if (!live.has(id)) this.#checks.delete(id)
  }

  /** Sends m and waits for the answer with its seq; rejects with WorkerGone if the worker exits or hangs. */
  #request(s: Slot, m: ToWorker & { seq: number }): Promise<FromWorker> {
    const proc = s.proc
    if (proc === null) return Promise.reject(new WorkerGone())
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#o.log.error({ worker: s.id, pid: proc.pid }, `worker did not answer within ${ANSWER_TIMEOUT_MS} ms; replacing it`)
        proc.kill('SIGKILL')
      }, ANSWER_TIMEOUT_MS)
      s.pending.set(m.seq, {
        resolve: (a) => {
          clearTimeout(timer)
          resolve(a)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      proc.send(m)
    })
  }

  #spawn(s: Slot): Promise<void> {
    // The main process's Node flags, less a debugger port the workers would fight over.
    const execArgv = workerExecArgv(process.execArgv, process.env.NODE_OPTIONS ?? '')
    const proc = fork(WORKER_MODULE, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' })
    s.proc = proc
    s.serving = false
    s.figures = new StatsReceiver()
    s.holds = null
    s.startedAt = Date.now()
    s.exited = new Promise((resolve) => proc.once('exit', () => resolve()))
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL')
        reject(new Error(`worker ${s.id} did not start within ${ANSWER_TIMEOUT_MS} ms`))
      }, ANSWER_TIMEOUT_MS)
      s.onReady = () => {
        clearTimeout(timer)
        resolve()
      }
      proc.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`worker ${s.id} exited while starting (code ${code}, signal ${signal})`))
      })
    })
    proc.on('message', (m: FromWorker) => {
      if (s.proc !== proc) return
      this.#onMessage(s, m)
    })
    proc.on('error', (err) => this.#o.log.error({ worker: s.id, err }, 'worker process error'))
    proc.once('exit', (code, signal) => this.#onExit(s, proc, code, signal))
    const o = this.#o
    proc.send({
      t: 'init',
      id: s.id,
      logLevel: o.logLevel,
      engine: o.engine,
      statsMs: o.statsMs ?? 500,
      graceMs: o.graceMs,
      accessLog: o.accessLog ?? null,
      probes: s.id === PROBER,
    } satisfies ToWorker)
    if (this.#certs.length > 0) proc.send({ t: 'certs', certs: this.#certs } satisfies ToWorker)
    if (this.#challenges.http01.length + this.#challenges.tlsAlpn01.length > 0) proc.send({ t: 'challenges', challenges: this.#challenges } satisfies ToWorker)
    return ready
  }

  #onMessage(s: Slot, m: FromWorker): void {
    switch (m.t) {
      case 'ready':
        s.onReady?.()
        s.onReady = null
        return
      case 'stats':
        s.figures.apply(m.stats)
        return
      case 'sample': {
        s.figures.set(m.sample.stats)
        const done = s.samples.get(m.seq)
        s.samples.delete(m.seq)
        done?.(m.sample)
        return
      }
      case 'applied':
      case 'refused': {
        // Every answer's delta is taken, whoever waits for it (a rollback's too): the next delta builds on it.
        if (m.t === 'applied') s.figures.apply(m.stats)
        const p = s.pending.get(m.seq)
        s.pending.delete(m.seq)
        p?.resolve(m)
        return
      }
      case 'refusing':
        s.onRefusing?.()
        s.onRefusing = null
        return
      case 'check': {
        if (s.id !== PROBER) return
        this.#checks.set(m.result.id, m.result)
        const results = [m.result]
        for (const f of this.#slots) if (f.id !== PROBER) f.proc?.send({ t: 'checks', results } satisfies ToWorker)
        return
      }
    }
  }

  #onExit(s: Slot, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (s.proc !== proc) return
    s.proc = null
    s.serving = false
    s.figures = new StatsReceiver()
    for (const p of s.pending.values()) p.reject(new WorkerGone())
    s.pending.clear()
    for (const done of s.samples.values()) done(null)
    s.samples.clear()
    s.onRefusing?.()
    s.onRefusing = null
    if (this.#stopping) return
    if (Date.now() - s.startedAt > 10_000) s.crashes = 0
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** s.crashes)
    s.crashes++
    this.#o.log.error({ worker: s.id, pid: proc.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting it')
    setTimeout(() => void this.#restart(s), delay).unref()
  }

  async #restart(s: Slot): Promise<void> {
    if (this.#stopping) return
    try {
      await this.#spawn(s)
    } catch (err) {
      this.#o.log.error({ worker: s.id, err }, 'worker restart failed') // its exit schedules the next try
      return
    }
    // Joins the group between two applies, with the snapshot the others serve.
    const join = this.#queue.then(async () => {
      if (this.#stopping || s.proc === null) return
      const cur = this.#current
      if (cur !== null) {
        const seq = ++this.#seq
        const a = await this.#request(s, { t: 'apply', seq, config: cur.config, version: cur.version }).catch(() => null)
        if (a === null) return // gone again
        if (a.t !== 'applied') {
          this.#o.log.error({ worker: s.id, err: a.t === 'refused' ? a.error : null }, 'restarted worker cannot apply the current snapshot; restarting it')
          s.proc.kill('SIGKILL')
          return
        }
        s.holds = cur
      }
      for (const key of this.#drained) s.proc.send({ t: 'drain', key, on: true } satisfies ToWorker)
      this.#handChecks([s])
      if (this.#limitShare !== 1) s.proc.send({ t: 'share', n: this.#limitShare } satisfies ToWorker)
      s.serving = true
      s.restarts++
      this.#o.log.info({ worker: s.id, pid: s.proc.pid, version: cur?.version ?? 0 }, 'worker restarted')
    })
    this.#queue = join.catch(() => undefined)
    await join
  }

  /** Merged figures of every running worker (at most statsMs old). */
  stats(): EngineStats {
    return mergeStats(this.#slots.filter((s) => s.proc !== null).map((s) => s.stats))
  }

  /**
   * A fresh sample from every running worker: each is asked now and answers
   * with its counters as they are, so a scrape right after N requests reads
   * N. A worker that does not answer within SAMPLE_TIMEOUT_MS is left out
   * (its entry is null); the apply path is not involved and nobody is killed.
   */
  async sample(): Promise<Array<{ id: number; pid: number; sample: WorkerSample } | null>> {
    const live = this.#slots.filter((s) => s.proc !== null)
    return Promise.all(
      live.map(async (s) => {
        const proc = s.proc as ChildProcess
        const seq = ++this.#seq
        const got = await new Promise<WorkerSample | null>((resolve) => {
          const timer = setTimeout(() => {
            s.samples.delete(seq)
            resolve(null)
          }, SAMPLE_TIMEOUT_MS)
          s.samples.set(seq, (x) => {
            clearTimeout(timer)
            resolve(x)
          })
          proc.send({ t: 'sample', seq } satisfies ToWorker)
        })
        return got === null ? null : { id: s.id, pid: proc.pid ?? 0, sample: got }
      }),
    )
  }

  /** Drains (on) or restores an upstream in every worker; false when the group serves no such upstream. */
  setDrained(key: string, on: boolean): boolean {
    if (!this.stats().upstreams.some((u) => u.key === key)) return false
    if (on) this.#drained.add(key)
    else this.#drained.delete(key)
    for (const s of this.#slots) s.proc?.send({ t: 'drain', key, on } satisfies ToWorker)
    return true
  }

  /** Rate limits: `n` engines share each limit (live instances times workers); every worker takes 1/n. */
  setLimitShare(n: number): void {
    this.#limitShare = n
    for (const s of this.#slots) s.proc?.send({ t: 'share', n } satisfies ToWorker)
  }

  /** Every worker reopens its access log file (SIGUSR1, after logrotate moved it). */
  reopenAccessLog(): void {
    for (const s of this.#slots) s.proc?.send({ t: 'reopen' } satisfies ToWorker)
  }

  workers(): WorkerStatus[] {
    return this.#slots.map((s) => ({
      id: s.id,
      pid: s.proc?.pid ?? null,
      serving: s.serving,
      restarts: s.restarts,
      snapshotVersion: s.stats.snapshotVersion,
      inFlight: s.stats.inFlight,
      connections: s.stats.listeners.reduce((n, l) => n + l.connections, 0),
      requests: s.stats.upstreams.reduce((n, u) => n + u.requests, 0),
    }))
  }

  /**
   * Every worker stops accepting, drains its in-flight requests within
   * graceMs and exits; resolves when all have exited (a worker still there
   * graceMs + 5 s later is killed).
   */
  shutdown(graceMs: number): Promise<void> {
    if (this.#stopped !== null) return this.#stopped
    this.#stopping = true
    const live = this.#slots.filter((s) => s.proc !== null)
    this.#refusing = Promise.all(live.map((s) => new Promise<void>((resolve) => (s.onRefusing = resolve)))).then(() => undefined)
    for (const s of live) s.proc?.send({ t: 'shutdown', graceMs } satisfies ToWorker)
    const all = Promise.all(this.#slots.map((s) => s.exited)).then(() => undefined)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const s of this.#slots) s.proc?.kill('SIGKILL')
        resolve()
      }, graceMs + 5000)
    })
    this.#stopped = Promise.race([all, late]).then(() => clearTimeout(timer))
    return this.#stopped
  }

  /** Resolves once every worker has stopped accepting (after shutdown()). */
  refusing(): Promise<void> {
    return this.#refusing ?? Promise.resolve()
  }

  /** Second signal: every worker goes at once. */
  kill(): void {
    this.#stopping = true
    for (const s of this.#slots) s.proc?.kill('SIGKILL')
  }
}

function toCode(code: string): ErrorCode {
  return (Object.values(ErrorCode) as string[]).includes(code) ? (code as ErrorCode) : ErrorCode.Internal
}
