// Which discovered routes the merge admits (merge.ts calls these; kept apart
// so the rules read in one place). Two questions, docs/discovery.md "Who is
// trusted" has the operator's view:
//
// 1. Does the store let it in? A stored server's or route's `discovery` rule
//    (discovery-rule.ts): "deny" refuses every discovered member, and every
//    discovered route whose hosts overlap the denying route's on that address
//    (a more specific filter would take part of its traffic); a constraint
//    admits only matching members.
// 2. Is the route someone else's? An *owner* is the deployment a container or
//    service belongs to: its Compose project (`project:NAME`, label
//    com.docker.compose.project), else its Swarm stack (`stack:NAME`, label
//    com.docker.stack.namespace), else for a plain container the host's
//    unmanaged containers as one owner (`docker`: `docker run` twice with the
//    same labels scales, as before), and for a Swarm service outside a stack
//    the service itself (`service:NAME`: its replicas are its scaling). Two
//    owners claiming the same listen address and filter (hosts, schemes,
//    path prefix): the owner whose earliest claiming member was created first
//    keeps it, ties broken by owner name, so a resync or a restart of the
//    balancer never flips it; the other is refused and reported. A stored
//    route with a constraint admits every matching owner (the operator chose
//    them).
//
// Service registries' tag-driven servers (Consul) take part too: the owner is
// the registered service in its registry (`consul:shop`: its instances are
// its scaling), the constraint subject its name with its tags and Meta as
// labels. A registry tells no creation time: such an owner claims after any
// owner whose creation time is known, then by name.

import type { Subject } from './constraint.ts'
import { ruleConstraint } from './discovery-rule.ts'
import type { DiscoveryRule } from './discovery-rule.ts'

/** What a source tells about one discovered server's container or service. */
export interface DiscoveredMeta {
  subject: Subject
  /** `project:shop`, `stack:bank`, `service:web`, `docker`. */
  owner: string
  /** ISO 8601 creation time of the container or service; '' when unknown. */
  created: string
}

export interface Refused {
  origin: string
  /** Container or service name. */
  name: string
  reason: string
}

const COMPOSE_PROJECT = 'com.docker.compose.project'
const STACK_NAMESPACE = 'com.docker.stack.namespace'

/** The owner of a container (`docker`) or Swarm service (`swarm`) by its labels. */
export function ownerOf(origin: 'docker' | 'swarm', name: string, labels: Readonly<Record<string, string>>): string {
  const project = labels[COMPOSE_PROJECT]
  if (project !== undefined && project !== '') return `project:${project}`
  const stack = labels[STACK_NAMESPACE]
  if (stack !== undefined && stack !== '') return `stack:${stack}`
  return origin === 'docker' ? 'docker' : `service:${name}`
}

/** The owner of a registry's tag-driven service: `consul:shop`. */
export function registryOwner(registry: string, service: string): string {
  return `${registry}:${service}`
}

export interface Claim {
  owner: string
  created: string
}

/** Keeps, per claim key, the first claim: earliest creation, then owner name. Unknown creation ('') counts as latest. */
export function firstClaim(winners: Map<string, Claim>, key: string, c: Claim): void {
  const w = winners.get(key)
  if (w === undefined || earlier(c, w)) winners.set(key, c)
}

function earlier(a: Claim, b: Claim): boolean {
  if (a.created !== b.created) {
    if (a.created === '') return false
    if (b.created === '') return true
    return a.created < b.created
  }
  return a.owner < b.owner
}

/** null when the rule admits the member; else why not. Absent rule: allowed. */
export function ruleRefusal(rule: DiscoveryRule | undefined, what: string, subject: Subject | null): string | null {
  if (rule === undefined || rule === 'allow') return null
  if (rule === 'deny') return `${what} is set to "discovery": "deny" in the store`
  if (subject === null) return `${what} admits only ${JSON.stringify(rule.Constraint)} and the source told nothing to check`
  return ruleConstraint(rule).test(subject) ? null : `does not match the constraint ${JSON.stringify(rule.Constraint)} of ${what}`
}

/**
 * Whether two Hosts lists can both match one request's host: an empty list
 * matches every host; `*.example.com` matches `a.example.com` and
 * `*.a.example.com`.
 */
export function hostsOverlap(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === 0 || b.length === 0) return true
  return a.some((x) => b.some((y) => hostOverlap(x.toLowerCase(), y.toLowerCase())))
}

function hostOverlap(x: string, y: string): boolean {
  if (x === y) return true
  const covers = (w: string, h: string): boolean => w.startsWith('*.') && h.endsWith(w.slice(1))
  return covers(x, y) || covers(y, x)
}
