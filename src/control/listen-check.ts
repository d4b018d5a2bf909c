// Before an API write is stored: can this instance listen on the addresses
// the write adds? Only the instance taking the write knows (another process
// holds the port, a privileged port without the capability, an address that
// is not on this host, descriptors running out), so it checks, and a write
// it could not serve is refused with E_CANNOT_LISTEN and nothing stored.
// `?force=true` skips the check (a shared store whose other instances can
// bind): the change is stored, refused by this engine, reported, and
// retried (control.ts).
//
// Each added address is bound once, as the engine binds it (bindServer:
// SO_REUSEPORT, so the instance's own listeners and workers never count as
// "in use"), and closed at once. The bind is asynchronous and the write's
// check runs inside the store's lock, synchronously: a write that adds an
// address not probed yet is abandoned before anything is written, the
// addresses are probed, and the write runs again (its edit is pure).

import { bindServer } from '../engine/listener.ts'
import type { DescriptorBudget } from '../engine/fd-budget.ts'
import { budgetShortfall } from '../engine/fd-budget.ts'
import { parseListenAddress } from '../model/address.ts'
import type { ParsedListenAddress } from '../model/address.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Problem } from '../model/errors.ts'
import type { ValidConfig } from '../model/types.ts'
import type { Candidate, Control, Edit, WriteOptions, WriteResult } from './control.ts'

/** Why an address cannot be bound, in words; `code` is the errno name. */
export function bindReason(code: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'in use by another process'
    case 'EACCES':
    case 'EPERM':
      return 'a privileged port (below 1024) and this process may not bind it (grant CAP_NET_BIND_SERVICE)'
    case 'EADDRNOTAVAIL':
      return 'not an address of this host'
    case 'EMFILE':
    case 'ENFILE':
      return 'no descriptors left'
    default:
      return 'cannot be bound'
  }
}

interface Added {
  listen: ParsedListenAddress
  /** Where the address is in the candidate: `servers[3].address`. */
  path: string
  address: string
}

/** Listen addresses in `after` that `before` does not listen on (by key: `:80` and `*:80` are one). */
export function addedListeners(before: ValidConfig, after: ValidConfig): Added[] {
  const had = new Set<string>()
  for (const s of before.servers) had.add(s.address)
  const keys = new Set<string>()
  const fresh: Added[] = []
  after.servers.forEach((s, i) => {
    if (had.has(s.address)) return
    const listen = parseListenAddress(s.address)
    if ('error' in listen) return // the parser refused it already
    fresh.push({ listen, path: `servers[${i}].address`, address: s.address })
  })
  if (fresh.length === 0) return fresh
  // Written differently but the same socket (`:80` before, `*:80` now): not new.
  for (const s of before.servers) {
    const l = parseListenAddress(s.address)
    if (!('error' in l)) keys.add(l.key)
  }
  return fresh.filter((a) => !keys.has(a.listen.key))
}

/** Binds `listen` as the engine would and closes it: null when it can be bound, else the errno name. */
export async function probeListen(listen: ParsedListenAddress): Promise<string | null> {
  try {
    const server = await bindServer(listen)
    await new Promise<void>((resolve) => server.close(() => resolve()))
    return null
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EINVAL'
  }
}

/** Probes at a time: each holds a descriptor while it binds. */
const PROBE_BATCH = 32

class NeedsProbe extends Error {
  readonly added: Added[]
  constructor(added: Added[]) {
    super('listen addresses not probed yet')
    this.added = added
  }
}

export interface ListenCheckOptions {
  /** The data plane's descriptor budget (with workers, the worker with the fewest free); null when unknown. */
  budget(): DescriptorBudget | null
}

/**
 * Control.write with the listen check: resolves as write() does, or rejects
 * with E_CANNOT_LISTEN naming every address that cannot be served and why
 * (nothing stored).
 */
export async function writeListenable(control: Control, edit: Edit, o: ListenCheckOptions, opts: WriteOptions = {}): Promise<WriteResult> {
  const probed = new Map<string, string | null>()
  for (let attempt = 0; ; attempt++) {
    try {
      return await control.write(edit, {
        ...opts,
        check: (c: Candidate) => {
          opts.check?.(c)
          refuseUnlistenable(addedListeners(control.served().config, c.served().config), probed, o.budget)
        },
      })
    } catch (err) {
      // A concurrent write can add other addresses between two attempts; a few rounds settle it.
      if (!(err instanceof NeedsProbe) || attempt >= 4) throw err
      const todo = err.added.filter((a) => !probed.has(a.listen.key))
      for (let i = 0; i < todo.length; i += PROBE_BATCH) {
        const batch = todo.slice(i, i + PROBE_BATCH)
        const codes = await Promise.all(batch.map((a) => probeListen(a.listen)))
        batch.forEach((a, j) => probed.set(a.listen.key, codes[j] ?? null))
      }
    }
  }
}

/** `budgetOf` is asked only when the write adds an address (it reads the engine's figures, every upstream's included). */
function refuseUnlistenable(added: Added[], probed: Map<string, string | null>, budgetOf: () => DescriptorBudget | null): void {
  if (added.length === 0) return
  const unknown = added.filter((a) => !probed.has(a.listen.key))
  if (unknown.length > 0) throw new NeedsProbe(unknown)
  const problems: Problem[] = []
  for (const a of added) {
    const code = probed.get(a.listen.key) ?? null
    if (code !== null) problems.push({ path: a.path, message: `${a.address}: ${bindReason(code)} (${code})` })
  }
  const budget = budgetOf()
  const short = budget === null ? null : budgetShortfall(budget, added.length)
  if (short !== null) for (const a of added) if (!problems.some((p) => p.path === a.path)) problems.push({ path: a.path, message: `${a.address}: ${short}` })
  if (problems.length === 0) return
  const first = problems[0] as Problem
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''
  throw new BalancerError(ErrorCode.CannotListen, `cannot listen on ${first.message}${more}; nothing was stored (?force=true stores it anyway)`, problems)
}
