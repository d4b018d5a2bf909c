// Container inspect JSON -> the server it contributes. Pure: golden files in
// test/golden/docker (refresh with UPDATE_GOLDEN=1).
//
// A container takes traffic only while it runs, is not paused or restarting,
// and, when it has a Docker healthcheck, reports `healthy`. The balancer's
// own container is never an upstream.

import type { Subject } from '../../model/constraint.ts'
import type { Problem } from '../../model/errors.ts'
import { labelServer, readLabels } from '../../model/labels.ts'
import type { Server } from '../../model/types.ts'
import type { ContainerInspect } from '../../docker-api/types.ts'
import type { SelfInfo } from './address.ts'
import { chooseAddress, singleExposedPort } from './address.ts'

export interface Translated {
  id: string
  /** Container name without the leading `/`. */
  name: string
  /** null: no traffic now (see skipped / problems). */
  server: Server | null
  /** Why a labelled container gets no traffic now, when that is normal (starting, unhealthy, stopped). */
  skipped: string | null
  /** How the address was chosen, e.g. `shared network web`. */
  via: string | null
  /** Label mistakes that keep it out. */
  problems: Problem[]
  /** Harmless remarks (unknown labels). */
  notes: Problem[]
}

/** null when the container does not ask for discovery (no balancer.enable=true). */
export function translateContainer(c: ContainerInspect, self: SelfInfo | null): Translated | null {
  const read = readLabels(c.Config?.Labels)
  if (!read.enabled) return null
  const out: Translated = {
    id: c.Id,
    name: (c.Name ?? '').replace(/^\//, '') || c.Id.slice(0, 12),
    server: null,
    skipped: null,
    via: null,
    problems: read.problems,
    notes: read.notes,
  }
  const s = read.settings
  if (s === null) return out
  out.skipped = notServing(c, self)
  if (out.skipped !== null) return out
  // balancer.service: the route goes to that registry service, not to this container's address.
  if (s.service !== null) {
    out.server = labelServer(s, [])
    return out
  }
  let port = s.port
  if (port === null) {
    const single = singleExposedPort(c)
    if (typeof single !== 'number') {
      out.problems.push({ path: 'balancer.port', message: single.error })
      return out
    }
    port = single
  }
  const addr = chooseAddress(c, port, s.network, self)
  if ('error' in addr) {
    out.problems.push({ path: s.network !== null ? 'balancer.network' : 'address', message: addr.error.replace(/^balancer\.network: /, '') })
    return out
  }
  out.via = addr.via
  out.server = labelServer(s, [{ Target: addr.Target, Port: addr.Port }])
  return out
}

/** What a discovery constraint sees of a container: name, labels, network names. */
export function containerSubject(c: ContainerInspect): Subject {
  return {
    name: (c.Name ?? '').replace(/^\//, '') || c.Id.slice(0, 12),
    labels: c.Config?.Labels ?? {},
    networks: Object.keys(c.NetworkSettings?.Networks ?? {}),
  }
}

function notServing(c: ContainerInspect, self: SelfInfo | null): string | null {
  if (self !== null && c.Id === self.id) return 'the balancer itself'
  const st = c.State
  if (st?.Running !== true) return `not running (${st?.Status ?? 'unknown'})`
  if (st.Paused === true) return 'paused'
  if (st.Restarting === true) return 'restarting'
  const health = st.Health?.Status
  if (health !== undefined && health !== 'healthy' && health !== 'none' && health !== '') return `health: ${health}`
  return null
}
