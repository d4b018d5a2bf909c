// Is this process running in a Docker container, and which one? Read from
// /proc/self/mountinfo (Docker bind-mounts /etc/hostname from
// /var/lib/docker/containers/<id>/hostname; works with cgroup v1 and v2), then
// /proc/self/cgroup (cgroup v1: .../docker/<id>), then HOSTNAME when
// /.dockerenv exists (the short id, unless --hostname was given). The hint is
// confirmed by inspecting it: a hint the daemon does not know means "outside".

import { existsSync, readFileSync } from 'node:fs'

const ID = /[0-9a-f]{64}/

export interface SelfProbe {
  read(path: string): string | null
  exists(path: string): boolean
  env: Readonly<Record<string, string | undefined>>
}

export const procProbe: SelfProbe = {
  read(path) {
    try {
      return readFileSync(path, 'utf8')
    } catch {
      return null
    }
  },
  exists: existsSync,
  env: process.env,
}

/** A container id or name to inspect, or null when nothing says we are in a container. */
export function selfHint(p: SelfProbe): string | null {
  const mountinfo = p.read('/proc/self/mountinfo') ?? ''
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ')
    // Fields: id parent major:minor root mountpoint ...
    if (f[4] !== '/etc/hostname' && f[4] !== '/etc/hosts' && f[4] !== '/etc/resolv.conf') continue
    const m = /\/containers\/([0-9a-f]{64})\//.exec(f[3] ?? '')
    if (m?.[1] !== undefined) return m[1]
  }
  const cgroup = p.read('/proc/self/cgroup') ?? ''
  const m = /(?:docker[/-]|\/docker\/)([0-9a-f]{64})/.exec(cgroup) ?? ID.exec(cgroup.split('\n').find((l) => l.includes('docker')) ?? '')
  if (m !== null) return m[1] ?? m[0]
  const host = p.env.HOSTNAME ?? ''
  if (p.exists('/.dockerenv') && /^[0-9a-f]{12}$/.test(host)) return host
  return null
}
