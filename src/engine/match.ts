// The reference route matcher. It runs on every request: no allocation (no
// string building, no regex, no closures), no throw; three plain passes over a
// listener's few routes.

import type { ListenerPlan, RoutePlan } from '../compiler/snapshot.ts'

function accepts(r: RoutePlan, path: string, scheme: 1 | 2): boolean {
  return (r.schemes & scheme) !== 0 && (r.pathPrefix === '' || path.startsWith(r.pathPrefix))
}

/**
 * The route for a request, or null (the caller answers 404). `host` must be
 * lower-cased with the port stripped (`[::1]` keeps its brackets). Precedence:
 * a route naming the host exactly, then the route whose wildcard suffix
 * matching the host is longest, then an any-host route; within each, the
 * longer PathPrefix wins (listener.routes is already in that order). A host
 * that matches a route whose path or scheme does not falls through to the
 * next class. PathPrefix is a plain string prefix, as in the seed: `/api`
 * also takes `/apiary`.
 */
export function matchRoute(listener: ListenerPlan, host: string, path: string, scheme: 1 | 2): RoutePlan | null {
  const routes = listener.routes
  const n = routes.length
  for (let i = 0; i < n; i++) {
    const r = routes[i] as RoutePlan
    if (r.hostsExact.size !== 0 && r.hostsExact.has(host) && accepts(r, path, scheme)) return r
  }
  let best: RoutePlan | null = null
  let bestLen = 0
  for (let i = 0; i < n; i++) {
    const r = routes[i] as RoutePlan
    const suffixes = r.hostSuffixes
    // Suffixes are sorted longest first, so the first one that matches is this route's best.
    for (let j = 0; j < suffixes.length; j++) {
      const s = suffixes[j] as string
      if (s.length < bestLen) break
      if (host.length > s.length && host.endsWith(s)) {
        if (accepts(r, path, scheme) && (best === null || s.length > bestLen || r.pathPrefix.length > best.pathPrefix.length)) {
          best = r
          bestLen = s.length
        }
        break
      }
    }
  }
  if (best !== null) return best
  for (let i = 0; i < n; i++) {
    const r = routes[i] as RoutePlan
    if (r.anyHost && accepts(r, path, scheme)) return r
  }
  return null
}
