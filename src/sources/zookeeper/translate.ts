// Apache Curator's service discovery layout in ZooKeeper: one node per
// instance, `<base>/<service>/<instance-id>`, whose data is Curator's
// JsonInstanceSerializer form of ServiceInstance:
//
//   {"name":"web","id":"7c1f...","address":"10.0.0.5","port":8080,"sslPort":null,
//    "payload":{"@class":"...","metadata":{"balancer.weight":"3"}},
//    "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null,"enabled":true}
//
// `port` and `sslPort` are integers or null; `enabled` is absent in data
// written before Curator 2.x's CURATOR-275 (then: enabled); `payload` is
// whatever the application registered, serialised with Jackson's type id
// (`@class`). Metadata is read from the payload's `metadata` map (Spring
// Cloud Zookeeper's form) and from the payload's own string fields.
//
// `sslPort` is the port the instance speaks TLS on: an instance with only
// an sslPort becomes an https upstream (Scheme https, verified as every
// https upstream is: docs/tls.md); one with both is reached over TLS on its
// sslPort, as Curator's UriSpec makes `{scheme}` https whenever sslPort is
// set, unless its metadata `balancer.scheme` is `http` (then `port`). Pure.

import type { Problem } from '../../model/errors.ts'
import type { Instance } from '../registry.ts'
import { checkInstance, stringMap } from '../registry.ts'

/** The instance, the problem that leaves it out, or null when Curator marks it disabled. */
export function instanceOf(registry: string, service: string, node: string, data: Buffer): Instance | Problem | null {
  const at = `${registry}:${service}/${node}`
  let o: unknown
  try {
    o = JSON.parse(data.toString('utf8'))
  } catch (err) {
    return { path: at, message: `not a Curator ServiceInstance (invalid JSON: ${(err as Error).message}); left out` }
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { path: at, message: 'not a Curator ServiceInstance (not a JSON object); left out' }
  const f = o as Record<string, unknown>
  if (f.enabled === false) return null
  const payload = f.payload
  const meta: Record<string, string> = {}
  let tags: string[] = []
  if (typeof payload === 'object' && payload !== null && !Array.isArray(payload)) {
    const p = payload as Record<string, unknown>
    Object.assign(meta, stringMap(p), stringMap(p.metadata))
    delete meta['@class']
    if (Array.isArray(p.tags)) tags = p.tags.filter((t): t is string => typeof t === 'string')
  }
  if (tags.length === 0 && meta.tags !== undefined)
    tags = meta.tags
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '')
  const id = typeof f.id === 'string' && f.id !== '' ? f.id : node
  const plain = f.port !== null && f.port !== undefined
  const tls = f.sslPort !== null && f.sslPort !== undefined
  // Curator's own UriSpec builds {scheme} as https whenever sslPort is set:
  // an instance with both is reached on sslPort over TLS, unless its
  // metadata says balancer.scheme=http.
  const scheme = (meta['balancer.scheme'] ?? '').trim().toLowerCase()
  if (scheme !== '' && scheme !== 'http' && scheme !== 'https') return { path: at, message: `balancer.scheme must be "http" or "https", got ${JSON.stringify(meta['balancer.scheme'])}; left out` }
  if (scheme === 'http' && !plain) return { path: at, message: 'balancer.scheme is "http" but the instance has no port, only an sslPort; left out' }
  if (scheme === 'https' && !tls) return { path: at, message: 'balancer.scheme is "https" but the instance has no sslPort; left out' }
  const https = tls && scheme !== 'http'
  return checkInstance(at, { id, host: f.address, port: https ? f.sslPort : f.port, tags, meta, https })
}
