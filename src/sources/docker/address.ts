// Which address the balancer uses to reach a container. Deterministic, in
// this order (docs/discovery.md, "Address choice"):
//
//  1. balancer.network: the container's IP on that network (by name, by the
//     compose-prefixed name `<project>_<name>`, or by network ID).
//  2. Host networking: 127.0.0.1 and the container port.
//  3. The balancer runs in a container: the network it shares with the
//     container (the lexicographically first, by name, when it shares several).
//  4. The balancer runs outside Docker: the port published on the host for
//     the container port (127.0.0.1 for a 0.0.0.0 / 127.0.0.1 binding, ::1 for
//     a :: binding, else the binding's own address); else the container's IP
//     on the default `bridge` network.
//  5. The lexicographically first network (by name) on which the container
//     has an IP address.

import type { ContainerInspect, EndpointSettings } from '../../docker-api/types.ts'

/** The balancer's own container: never an upstream, and the networks rule 3 looks at. */
export interface SelfInfo {
  id: string
  networkIds: ReadonlySet<string>
}

export type AddressChoice = { Target: string; Port: number; via: string } | { error: string }

interface Net {
  name: string
  id: string
  ip: string
}

function networksOf(c: ContainerInspect): Net[] {
  const nets = Object.entries(c.NetworkSettings?.Networks ?? {}).map(([name, e]: [string, EndpointSettings]) => ({
    name,
    id: e.NetworkID ?? '',
    ip: e.IPAddress || e.GlobalIPv6Address || '',
  }))
  return nets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

function findNetwork(nets: readonly Net[], want: string, project: string | undefined): Net | undefined {
  const w = want.toLowerCase()
  return (
    nets.find((n) => n.name === want) ??
    (project === undefined ? undefined : nets.find((n) => n.name === `${project}_${want}`)) ??
    nets.find((n) => n.name.toLowerCase() === w) ??
    (w.length >= 12 ? nets.find((n) => n.id.toLowerCase().startsWith(w)) : undefined)
  )
}

export function chooseAddress(c: ContainerInspect, port: number, network: string | null, self: SelfInfo | null): AddressChoice {
  const nets = networksOf(c)
  const project = c.Config?.Labels?.['com.docker.compose.project']
  if (network !== null) {
    const n = findNetwork(nets, network, project)
    if (n === undefined) {
      const on = nets.map((x) => x.name).join(', ') || 'none'
      return { error: `balancer.network: the container is not on network ${JSON.stringify(network)} (it is on: ${on})` }
    }
    if (n.name === 'host') return { Target: '127.0.0.1', Port: port, via: 'network host' }
    if (n.ip === '') return { error: `balancer.network: the container has no IP address on network ${JSON.stringify(n.name)}` }
    return { Target: n.ip, Port: port, via: `network ${n.name}` }
  }
  if (c.HostConfig?.NetworkMode === 'host' || nets.some((n) => n.name === 'host')) return { Target: '127.0.0.1', Port: port, via: 'network host' }
  if (self !== null) {
    const shared = nets.find((n) => n.ip !== '' && self.networkIds.has(n.id))
    if (shared !== undefined) return { Target: shared.ip, Port: port, via: `shared network ${shared.name}` }
  } else {
    const published = publishedPort(c, port)
    if (published !== null) return published
    const bridge = nets.find((n) => n.name === 'bridge' && n.ip !== '')
    if (bridge !== undefined) return { Target: bridge.ip, Port: port, via: 'network bridge' }
  }
  const first = nets.find((n) => n.ip !== '')
  if (first !== undefined) return { Target: first.ip, Port: port, via: `first network ${first.name}` }
  return { error: 'the container has no IP address on any network and no published port' }
}

function publishedPort(c: ContainerInspect, port: number): AddressChoice | null {
  const bindings = (c.NetworkSettings?.Ports ?? {})[`${port}/tcp`] ?? []
  const usable = bindings.filter((b) => /^[0-9]{1,5}$/.test(b.HostPort ?? ''))
  const rank = (b: { HostIp?: string }): number => {
    const ip = b.HostIp ?? ''
    return ip === '' || ip === '0.0.0.0' || ip === '127.0.0.1' ? 0 : ip === '::' || ip === '::1' ? 1 : 2
  }
  const best = [...usable].sort((a, b) => rank(a) - rank(b))[0]
  if (best === undefined) return null
  const r = rank(best)
  const host = r === 0 ? '127.0.0.1' : r === 1 ? '::1' : (best.HostIp ?? '')
  return { Target: host, Port: Number(best.HostPort), via: `published ${port}/tcp` }
}

/** The single exposed TCP port, when the container has exactly one. */
export function singleExposedPort(c: ContainerInspect): number | { error: string } {
  const ports = Object.keys(c.Config?.ExposedPorts ?? {})
    .filter((k) => k.endsWith('/tcp') || !k.includes('/'))
    .map((k) => Number(k.split('/')[0]))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b)
  const only = ports[0]
  if (ports.length === 1 && only !== undefined) return only
  if (ports.length === 0) return { error: 'the container exposes no TCP port; set balancer.port' }
  return { error: `the container exposes ${ports.length} TCP ports (${ports.join(', ')}); set balancer.port to the one to use` }
}
