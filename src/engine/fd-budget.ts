// The process's file descriptor budget: its limit, what is open, and the
// reserve kept for client and upstream connections.
//
// Every listening address costs one descriptor per process; everything
// else the limit allows goes to connections. A configuration whose
// listeners would leave less than the reserve is refused before anything
// is bound (engine.ts), so a thousand addresses cannot starve the clients
// they are for. Node raises the soft RLIMIT_NOFILE to the hard limit at
// start-up on Linux; raiseDescriptorLimit() checks and does it where that
// did not happen.

import { readFileSync, readdirSync } from 'node:fs'
import { libc } from './libc.ts'

export interface DescriptorBudget {
  /** The soft RLIMIT_NOFILE (after raising it), or null where it cannot be read. */
  limit: number | null
  /** The hard limit, or null. */
  hard: number | null
  /** Descriptors open now, or null where they cannot be counted (no /proc). */
  open: number | null
  /** Kept free for client and upstream connections. */
  reserve: number
}

/**
 * The default reserve: a quarter of the limit, at least 64 and at most
 * 4,096 (enough for a few thousand clients and their upstream connections;
 * an operator expecting more raises the limit or --fd-reserve).
 */
export function defaultReserve(limit: number | null): number {
  if (limit === null) return 0
  return Math.max(64, Math.min(4096, Math.floor(limit / 4)))
}

/** [soft, hard] from libc, else from /proc/self/limits; null where neither answers. */
export function descriptorLimits(): [number, number] | null {
  const fromLibc = libc()?.getNofile() ?? null
  if (fromLibc !== null) return fromLibc
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const m = line === undefined ? null : /^Max open files\s+(\S+)\s+(\S+)/.exec(line)
    if (m === null) return null
    const n = (s: string | undefined): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s))
    return [n(m[1]), n(m[2])]
  } catch {
    return null
  }
}

/** Raises the soft limit to the hard one if it is lower; returns [soft, hard] afterwards (null: unknown). */
export function raiseDescriptorLimit(): [number, number] | null {
  const now = descriptorLimits()
  if (now === null || now[0] >= now[1]) return now
  const c = libc()
  if (c === null || !c.setNofile(now[1], now[1])) return now
  return descriptorLimits()
}

/** Descriptors this process has open, or null where /proc is not there. */
export function openDescriptors(): number | null {
  try {
    // The listing itself holds one descriptor while it reads.
    return readdirSync('/proc/self/fd').length - 1
  } catch {
    return null
  }
}

export function currentBudget(reserve: number | null): DescriptorBudget {
  const lim = descriptorLimits()
  const limit = lim === null ? null : lim[0]
  return { limit, hard: lim === null ? null : lim[1], open: openDescriptors(), reserve: reserve ?? defaultReserve(limit) }
}

/**
 * Null when `adding` more listening descriptors leave at least the reserve
 * free; else why not, in words an operator can act on.
 */
export function budgetShortfall(b: DescriptorBudget, adding: number): string | null {
  if (adding <= 0 || b.limit === null || b.open === null) return null
  const left = b.limit - b.open - adding
  if (left >= b.reserve) return null
  return `no descriptors left: ${adding} more listening socket(s) would leave ${Math.max(0, left)} of the limit of ${b.limit} (${b.open} open) for client and upstream connections, below the reserve of ${b.reserve}; raise the limit (ulimit -n) or lower --fd-reserve`
}
