// The default worker count follows the cgroup CPU quota, on the file layouts
// cgroup v1 and v2 present inside and outside a container. (The real thing,
// `docker run --cpus 1` starting one worker, is in test/deploy/image.test.ts.)
import { describe, expect, it } from 'vitest'
import { cgroupCpuQuota, usableCpus } from '../../src/cli/cpus.ts'

function files(map: Record<string, string>): (p: string) => string | null {
  return (p) => map[p] ?? null
}

const V1_CONTAINER = '12:cpu,cpuacct:/docker/8255af5a0c7c\n9:name=systemd:/docker/8255af5a0c7c\n'

describe('cgroup CPU quota', () => {
  it('cgroup v1 in a container: the quota mounted at the controller root (docker run --cpus 1.5)', () => {
    const read = files({ '/proc/self/cgroup': V1_CONTAINER, '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '150000\n', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n' })
    expect(cgroupCpuQuota(read)).toBe(1.5)
    expect(usableCpus(read, 8)).toBe(2)
  })

  it('cgroup v1 without a quota (-1) leaves the CPU set', () => {
    const read = files({ '/proc/self/cgroup': V1_CONTAINER, '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' })
    expect(cgroupCpuQuota(read)).toBeNull()
    expect(usableCpus(read, 8)).toBe(8)
  })

  it('cgroup v2 in a cgroup namespace: /sys/fs/cgroup/cpu.max', () => {
    const read = files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '100000 100000\n' })
    expect(usableCpus(read, 2)).toBe(1)
    expect(usableCpus(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000\n' }), 2)).toBe(2)
  })

  it('cgroup v2 on a host: the smallest quota of the process cgroup and its ancestors', () => {
    const read = files({
      '/proc/self/cgroup': '0::/system.slice/balancer.service\n',
      '/sys/fs/cgroup/system.slice/balancer.service/cpu.max': 'max 100000\n',
      '/sys/fs/cgroup/system.slice/cpu.max': '300000 100000\n',
    })
    expect(cgroupCpuQuota(read)).toBe(3)
    expect(usableCpus(read, 16)).toBe(3)
  })

  it('never more than the CPU set, never less than one', () => {
    expect(usableCpus(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '800000 100000\n' }), 2)).toBe(2)
    expect(usableCpus(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '20000 100000\n' }), 2)).toBe(1)
    expect(usableCpus(files({}), 4)).toBe(4)
  })
})
