// How many CPUs this process may use: the CPU set (os.availableParallelism)
// capped by the cgroup's CPU quota, which is what `docker run --cpus`,
// compose `cpus:` and Swarm `deploy.resources.limits.cpus` set. Node's
// availableParallelism() follows the CPU set only (and libuv reads no cgroup
// v1 quota), so a container limited to 1 CPU on a 64-core node would start
// 64 workers that the kernel then throttles in turn.
//
// cgroup v2: `cpu.max` ("max 100000" or "150000 100000") of this process's
// cgroup and of every ancestor visible here (a slice may cap it too).
// cgroup v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none). Inside a
// container the process's own cgroup is mounted at the controller's root,
// so the root files are read when the path from /proc/self/cgroup is absent.

import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

export type ReadFile = (path: string) => string | null

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** The CPU quota in CPUs (1.5 for 150000/100000), or null when none is set or none can be read. */
export function cgroupCpuQuota(read: ReadFile = readText): number | null {
  const lines = (read('/proc/self/cgroup') ?? '').split('\n')
  let best: number | null = null
  const take = (q: number | null): void => {
    if (q !== null && (best === null || q < best)) best = q
  }
  for (const line of lines) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line.trim())
    if (m === null) continue
    const controllers = (m[1] ?? '').split(',')
    const path = m[2] ?? '/'
    if (m[1] === '') {
      for (const dir of ancestors(path)) take(v2Quota(read(`/sys/fs/cgroup${dir}/cpu.max`)))
    } else if (controllers.includes('cpu')) {
      const roots = ['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpuacct,cpu', '/sys/fs/cgroup/cpu']
      for (const root of roots) {
        for (const dir of ancestors(path)) take(v1Quota(read(`${root}${dir}/cpu.cfs_quota_us`), read(`${root}${dir}/cpu.cfs_period_us`)))
      }
    }
  }
  return best
}

/** '/a/b' -> ['/a/b', '/a', '']; '/' -> ['']. */
function ancestors(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '')
  const out: string[] = []
  for (let i = parts.length; i >= 0; i--) out.push(i === 0 ? '' : `/${parts.slice(0, i).join('/')}`)
  return out
}

function v2Quota(text: string | null): number | null {
  if (text === null) return null
  const [quota, period] = text.trim().split(/\s+/)
  if (quota === undefined || quota === 'max') return null
  return ratio(Number(quota), Number(period ?? '100000'))
}

function v1Quota(quota: string | null, period: string | null): number | null {
  if (quota === null || period === null) return null
  return ratio(Number(quota.trim()), Number(period.trim()))
}

function ratio(quota: number, period: number): number | null {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return null
  return quota / period
}

/**
 * The default number of engine workers: one per usable CPU, the quota
 * rounded up (1.5 CPUs: 2 workers, each taking its share of the quota),
 * never more than the CPU set and never less than 1.
 */
export function usableCpus(read: ReadFile = readText, parallelism: number = availableParallelism()): number {
  const quota = cgroupCpuQuota(read)
  const n = quota === null ? parallelism : Math.min(parallelism, Math.ceil(quota - 1e-9))
  return Math.max(1, n)
}
