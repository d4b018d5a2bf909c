import { describe, expect, it } from 'vitest'
import { selfHint } from '../../src/docker-api/self.ts'
import type { SelfProbe } from '../../src/docker-api/self.ts'

const ID = '504623c96a761ddf5a76dad76f500bc13b5e15991ccf73bde460199bb8204bca'

function probe(files: Record<string, string>, env: Record<string, string> = {}, dockerenv = false): SelfProbe {
  return { read: (p) => files[p] ?? null, exists: (p) => p === '/.dockerenv' && dockerenv, env }
}

describe('selfHint (which container are we in?)', () => {
  it('reads the container id from the /etc/hostname bind mount in mountinfo (cgroup v1 and v2 alike)', () => {
    const mountinfo = [
      '600 500 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X',
      `612 600 254:1 /var/lib/docker/containers/${ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw`,
    ].join('\n')
    expect(selfHint(probe({ '/proc/self/mountinfo': mountinfo, '/proc/self/cgroup': '0::/\n' }))).toBe(ID)
  })

  it('ignores container paths mounted anywhere but /etc/hostname, /etc/hosts, /etc/resolv.conf', () => {
    const mountinfo = `612 600 254:1 /var/lib/docker/containers/${ID}/logs /var/log/app rw - ext4 /dev/vda rw`
    expect(selfHint(probe({ '/proc/self/mountinfo': mountinfo, '/proc/self/cgroup': '0::/\n' }))).toBeNull()
  })

  it('falls back to the cgroup v1 path', () => {
    expect(selfHint(probe({ '/proc/self/mountinfo': '', '/proc/self/cgroup': `4:memory:/docker/${ID}\n0::/\n` }))).toBe(ID)
  })

  it('falls back to HOSTNAME (the short id) only when /.dockerenv exists', () => {
    expect(selfHint(probe({}, { HOSTNAME: '504623c96a76' }, true))).toBe('504623c96a76')
    expect(selfHint(probe({}, { HOSTNAME: '504623c96a76' }, false))).toBeNull()
    expect(selfHint(probe({}, { HOSTNAME: 'my-laptop' }, true))).toBeNull()
  })
})
