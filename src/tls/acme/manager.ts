// Which certificates to order from the ACME CA and when, for one balancer
// instance among any number sharing the store:
//
// - Wanted: one certificate per `tls.Acme` group of the configuration (its
//   first host names it in the store), and one per labelled container or
//   service (tls.Labelled, the merge's).
// - Not ordered while a stored certificate covers every host: an uploaded
//   one (never replaced by ACME while it is valid), another wanted ACME
//   certificate (its own job renews it), or the one ACME issued for it,
//   until its renewal time: in the window the CA suggests when it offers
//   ACME Renewal Information (src/tls/acme/ari.ts), else two thirds of its
//   lifetime.
// - Exactly one instance orders a given certificate at a time: it takes the
//   lease `acme-<name>` in the store first (an etcd lease, a Consul session,
//   a ZooKeeper ephemeral node, a lock file); the others look again a little
//   later, and see the certificate when it is stored. A holder that dies
//   loses the lease and another takes over.
// - A failed order is retried with exponential backoff and jitter, and the
//   backoff is kept in the store (`acme-state/<name>`): every instance waits
//   for the same next attempt, so ten instances restarting at once neither
//   order ten times nor hammer a CA that is down.
//
// Every phase change is logged, and status() is what GET /cert shows.

import { randomInt } from 'node:crypto'
import type { Config } from '../../model/types.ts'
import type { Lease, SharedSpace } from '../../store/shared.ts'
import { sharedKey } from '../../store/shared.ts'
import type { StoredCerts } from '../stored.ts'
import type { ChallengeBook } from './challenges.ts'
import { RenewalInfo } from './ari.ts'
import type { RenewalPlan } from './ari.ts'
import { order } from './order.ts'
import type { AcmeDirectory } from './order.ts'

export const STATE_DIR = 'acme-state'

export interface AcmeManagerOptions {
  directory: AcmeDirectory
  space: SharedSpace
  stored: StoredCerts
  book: ChallengeBook
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void }
  /** First retry after a failure; doubles with each failure in a row. Default 1 minute. */
  retryMinMs?: number
  /** Longest wait between attempts. Default 6 hours. */
  retryMaxMs?: number
  /** Lease time (renewed while held): a dead holder's order is taken over after this. Default 15 s. */
  leaseMs?: number
  /** Time other instances get to see a challenge before the CA is asked to validate. Default 1 s. */
  settleMs?: number
  /** Contact for groups that name none. Default none. */
  defaultEmail?: string
}

interface Want {
  name: string
  hosts: string[]
  email: string
  challenge: 'http-01' | 'tls-alpn-01'
}

/** Shared per certificate in the store: the backoff every instance respects. */
interface SharedState {
  failures: number
  lastError: string | null
  /** Epoch ms; 0: no wait. */
  nextAttempt: number
  lastAttempt: number
}

export type AcmePhase = 'pending' | 'ordering' | 'ordering elsewhere' | 'valid' | 'covered' | 'waiting'

export interface AcmeView {
  name: string
  hosts: string[]
  challenge: string
  phase: AcmePhase
  /** When the stored certificate is renewed (ISO); null without one. */
  nextRenewal: string | null
  /** What set nextRenewal: `ari` (the CA's suggested window) or `lifetime` (two thirds of it); null without one. */
  renewalBy: 'ari' | 'lifetime' | null
  /** After failures: when the next attempt may start (ISO). */
  nextAttempt: string | null
  failures: number
  lastError: string | null
  /** The stored certificate that covers the hosts instead (phase `covered`): an uploaded one, or another wanted ACME certificate. */
  coveredBy: string | null
}

interface Job {
  want: Want
  timer: NodeJS.Timeout | null
  running: boolean
  phase: AcmePhase
  nextRenewal: number | null
  renewalBy: 'ari' | 'lifetime' | null
  state: SharedState
  coveredBy: string | null
}

const EMPTY_STATE: SharedState = { failures: 0, lastError: null, nextAttempt: 0, lastAttempt: 0 }
/** A lease held elsewhere: look again within this (jittered), or sooner when the certificate is stored. */
const RECHECK_MS = 5000

/** True when a certificate name (maybe `*.x`) covers `host`. */
export function covers(name: string, host: string): boolean {
  if (name === host) return true
  if (!name.startsWith('*.')) return false
  const dot = host.indexOf('.')
  return dot > 0 && host.slice(dot + 1) === name.slice(2)
}

/** Two thirds of the way from notBefore to notAfter. */
export function renewalTime(notBefore: number, notAfter: number): number {
  return notBefore + Math.floor(((notAfter - notBefore) * 2) / 3)
}

/**
 * Every certificate the configuration asks ACME for, by name (the first
 * host): each server's tls.Acme, and each labelled container's or service's
 * own (tls.Labelled). Groups sharing a name are merged; a group whose hosts
 * another's certificate names all is left out (that one serves them).
 */
export function wantedFrom(cfg: Config): Want[] {
  const byName = new Map<string, Want>()
  for (const s of cfg.servers) {
    const t = s.tls
    if (t === undefined) continue
    for (const a of t.Acme === undefined ? (t.Labelled ?? []) : [t.Acme, ...(t.Labelled ?? [])]) {
      if (a.Hosts.length === 0) continue
      const name = a.Hosts[0] as string
      const have = byName.get(name)
      if (have === undefined) byName.set(name, { name, hosts: [...a.Hosts], email: a.Email, challenge: a.Challenge })
      else for (const h of a.Hosts) if (!have.hosts.includes(h)) have.hosts.push(h)
    }
  }
  const all = [...byName.values()]
  return all.filter((w) => !all.some((o) => o !== w && w.hosts.every((h) => o.hosts.includes(h)) && (o.hosts.length > w.hosts.length || o.name < w.name)))
}

export class AcmeManager {
  readonly #o: Required<Omit<AcmeManagerOptions, 'directory' | 'space' | 'stored' | 'book' | 'log'>> & AcmeManagerOptions
  readonly #jobs = new Map<string, Job>()
  readonly #ari: RenewalInfo
  #stopped = false

  constructor(o: AcmeManagerOptions) {
    this.#o = { retryMinMs: 60_000, retryMaxMs: 6 * 3_600_000, leaseMs: 15_000, settleMs: 1000, defaultEmail: '', ...o }
    this.#ari = new RenewalInfo(o.directory)
  }

  /** The configuration changed: start, change or stop jobs. */
  setWanted(cfg: Config): void {
    if (this.#stopped) return
    const wanted = wantedFrom(cfg)
    const names = new Set(wanted.map((w) => w.name))
    let gone = false
    for (const [name, job] of this.#jobs) {
      if (names.has(name)) continue
      if (job.timer !== null) clearTimeout(job.timer)
      this.#jobs.delete(name)
      gone = true
    }
    // A certificate no longer wanted is no longer renewed: those it covered look again.
    if (gone) for (const job of this.#jobs.values()) if (job.phase === 'covered' && !job.running) this.#schedule(job, Date.now())
    for (const w of wanted) {
      const job = this.#jobs.get(w.name)
      if (job !== undefined && JSON.stringify(job.want) === JSON.stringify(w)) continue
      if (job !== undefined) job.want = w
      else {
        const fresh: Job = { want: w, timer: null, running: false, phase: 'pending', nextRenewal: null, renewalBy: null, state: { ...EMPTY_STATE }, coveredBy: null }
        this.#jobs.set(w.name, fresh)
        // Instances that start together do not all look at once.
        this.#schedule(fresh, Date.now() + randomInt(0, 1000))
        continue
      }
      this.#schedule(job, Date.now())
    }
  }

  /** Stored certificates changed (one was issued or uploaded, maybe by another instance): look again. */
  storedChanged(): void {
    for (const job of this.#jobs.values()) if (!job.running) this.#schedule(job, Date.now())
  }

  status(): AcmeView[] {
    return [...this.#jobs.values()].map((j) => ({
      name: j.want.name,
      hosts: [...j.want.hosts],
      challenge: j.want.challenge,
      phase: j.phase,
      nextRenewal: j.nextRenewal === null ? null : new Date(j.nextRenewal).toISOString(),
      renewalBy: j.nextRenewal === null ? null : j.renewalBy,
      nextAttempt: j.state.nextAttempt > Date.now() ? new Date(j.state.nextAttempt).toISOString() : null,
      failures: j.state.failures,
      lastError: j.state.lastError,
      coveredBy: j.coveredBy,
    }))
  }

  stop(): void {
    this.#stopped = true
    for (const j of this.#jobs.values()) if (j.timer !== null) clearTimeout(j.timer)
    this.#jobs.clear()
  }

  #schedule(job: Job, at: number): void {
    if (this.#stopped) return
    if (job.timer !== null) clearTimeout(job.timer)
    // setTimeout holds at most ~24.8 days; a later time is reached in steps.
    const delay = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1)
    job.timer = setTimeout(() => {
      job.timer = null
      void this.#evaluate(job).catch((err: unknown) => {
        this.#o.log.error({ cert: job.want.name, err: (err as Error).message }, 'ACME: cannot evaluate the certificate; looking again later')
        this.#schedule(job, Date.now() + RECHECK_MS + randomInt(0, RECHECK_MS))
      })
    }, delay)
    job.timer.unref()
  }

  /**
   * The valid stored certificate covering every host, the one expiring
   * last. `others`: one that is not this job's own (uploaded, or ACME's
   * for another wanted certificate, which that job renews), preferred.
   */
  #covering(job: Job): { name: string; origin: string; notBefore: number; notAfter: number; others: boolean } | null {
    const now = Date.now()
    const hosts = job.want.hosts
    let best: { name: string; origin: string; notBefore: number; notAfter: number; others: boolean } | null = null
    for (const s of this.#o.stored.status()) {
      const info = s.info
      if (info === null || now > info.notAfter || now < info.notBefore) continue
      if (!hosts.every((h) => info.names.some((n) => covers(n, h)))) continue
      const others = s.origin !== 'acme' || (s.name !== job.want.name && this.#jobs.has(s.name))
      if (best === null || (others && !best.others) || (others === best.others && info.notAfter > best.notAfter))
        best = { name: s.name, origin: s.origin, notBefore: info.notBefore, notAfter: info.notAfter, others }
    }
    return best
  }

  async #evaluate(job: Job): Promise<void> {
    if (job.running || this.#stopped) return
    const w = job.want
    const now = Date.now()
    const cover = this.#covering(job)
    if (cover?.others === true) {
      this.#phase(job, 'covered', { coveredBy: cover.name })
      job.nextRenewal = null
      // When it expires (or is removed, or renewed: storedChanged), look again.
      this.#schedule(job, cover.notAfter + 1000)
      return
    }
    job.coveredBy = null
    if (cover !== null) {
      const plan = await this.#renewal(cover)
      job.nextRenewal = plan.at
      job.renewalBy = plan.source
      if (now < plan.at) {
        this.#phase(job, 'valid', { notAfter: new Date(cover.notAfter).toISOString(), nextRenewal: new Date(plan.at).toISOString(), renewalBy: plan.source })
        this.#schedule(job, plan.askAgainAt === null ? plan.at : Math.min(plan.at, plan.askAgainAt))
        return
      }
    } else job.nextRenewal = null
    job.state = await this.#readState(w.name)
    if (job.state.nextAttempt > now) {
      this.#phase(job, 'waiting', { nextAttempt: new Date(job.state.nextAttempt).toISOString(), lastError: job.state.lastError })
      this.#schedule(job, job.state.nextAttempt)
      return
    }
    const lease = await this.#o.space.lease(`acme-${w.name}`, this.#o.leaseMs)
    if (lease === null) {
      this.#phase(job, 'ordering elsewhere', {})
      this.#schedule(job, Date.now() + RECHECK_MS + randomInt(0, RECHECK_MS))
      return
    }
    job.running = true
    try {
      await this.#order(job, lease, cover !== null)
    } finally {
      job.running = false
      await lease.release().catch(() => undefined)
    }
    this.#schedule(job, Date.now())
  }

  async #order(job: Job, lease: Lease, renewing: boolean): Promise<void> {
    const w = job.want
    // Read again under the lease: another instance may have just finished or failed.
    job.state = await this.#readState(w.name)
    const cover = this.#covering(job)
    if (job.state.nextAttempt > Date.now() || (cover !== null && (cover.others || Date.now() < (await this.#renewal(cover)).at))) return
    this.#phase(job, 'ordering', { hosts: w.hosts, challenge: w.challenge, renewing })
    const started = Date.now()
    try {
      const issued = await order(
        { hosts: w.hosts, email: w.email === '' ? this.#o.defaultEmail : w.email, challenge: w.challenge },
        { space: this.#o.space, book: this.#o.book, directory: this.#o.directory, settleMs: this.#o.settleMs, signal: lease.lost, log: this.#o.log },
      )
      const { info } = await this.#o.stored.put(w.name, issued.cert, issued.key, 'acme', { cert: 'acme', key: 'acme' })
      job.state = { ...EMPTY_STATE, lastAttempt: started }
      await this.#writeState(w.name, job.state)
      this.#o.log.info(
        { cert: w.name, hosts: w.hosts, notAfter: new Date(info.notAfter).toISOString(), tookMs: Date.now() - started },
        renewing ? 'ACME certificate renewed' : 'ACME certificate issued',
      )
    } catch (err) {
      const failures = job.state.failures + 1
      const step = Math.min(this.#o.retryMaxMs, this.#o.retryMinMs * 2 ** (failures - 1))
      // Jitter: 50-100% of the step, so instances (and certificates) spread out.
      const wait = Math.floor(step / 2 + (randomInt(0, 1_000_001) / 1_000_000) * (step / 2))
      const message = (err as Error).message
      job.state = { failures, lastError: message, nextAttempt: Date.now() + wait, lastAttempt: started }
      await this.#writeState(w.name, job.state).catch(() => undefined)
      this.#phase(job, 'waiting', {})
      this.#o.log.error({ cert: w.name, hosts: w.hosts, err: message, failures, retryInMs: wait, startedAt: started, nextAttempt: job.state.nextAttempt }, 'ACME order failed; retrying later')
    }
  }

  /** When to renew a stored ACME certificate: the CA's ARI window, or two thirds of its lifetime. */
  async #renewal(cover: { name: string; notBefore: number; notAfter: number }): Promise<RenewalPlan> {
    const fallback = renewalTime(cover.notBefore, cover.notAfter)
    const pem = this.#o.stored.get(cover.name)?.value.cert
    if (pem === undefined) return { at: fallback, askAgainAt: null, source: 'lifetime' }
    return this.#ari.plan(pem, fallback)
  }

  #phase(job: Job, phase: AcmePhase, detail: Record<string, unknown> & { coveredBy?: string }): void {
    if (detail.coveredBy !== undefined) job.coveredBy = detail.coveredBy
    if (job.phase === phase) return
    job.phase = phase
    if (phase === 'ordering' || phase === 'ordering elsewhere') return // logged by the order itself, or by the instance holding the lease
    this.#o.log.info({ cert: job.want.name, phase, ...detail }, 'ACME certificate state')
  }

  async #readState(name: string): Promise<SharedState> {
    const item = await this.#o.space.get(sharedKey(STATE_DIR, name))
    if (item === null) return { ...EMPTY_STATE }
    try {
      return { ...EMPTY_STATE, ...(JSON.parse(item.value) as Partial<SharedState>) }
    } catch {
      return { ...EMPTY_STATE }
    }
  }

  async #writeState(name: string, s: SharedState): Promise<void> {
    await this.#o.space.put(sharedKey(STATE_DIR, name), JSON.stringify(s), '*')
  }
}
