// The registrator layout in etcd: `<prefix>/<service>/<instance-id>` whose
// value is `host:port` (registrator's own form; `[v6]:port` for IPv6) or JSON
// `{"host": "10.0.0.5", "port": 8080, "meta": {...}, "tags": [...]}`. Pure:
// tested with the values registrator and hand-written clients write.

import type { Problem } from '../../model/errors.ts'
import type { Instance } from '../registry.ts'
import { checkInstance, stringMap } from '../registry.ts'

/** One key's value -> the instance, or the problem that leaves it out. */
export function instanceOf(registry: string, service: string, id: string, value: string): Instance | Problem {
  const at = `${registry}:${service}/${id}`
  const text = value.trim()
  if (text.startsWith('{')) {
    let o: unknown
    try {
      o = JSON.parse(text)
    } catch (err) {
      return { path: at, message: `value is not valid JSON (${(err as Error).message}); left out` }
    }
    const f = lowerKeys(o)
    const tags = Array.isArray(f.tags)
      ? f.tags.filter((t): t is string => typeof t === 'string')
      : typeof f.tags === 'string'
        ? f.tags
            .split(',')
            .map((t) => t.trim())
            .filter((t) => t !== '')
        : []
    return checkInstance(at, { id, host: f.host ?? f.address, port: f.port, tags, meta: stringMap(f.meta) })
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text)
  if (m === null) return { path: at, message: `value must be host:port or JSON {"host","port","meta"}, got ${JSON.stringify(value.slice(0, 100))}; left out` }
  return checkInstance(at, { id, host: m[1] ?? m[2], port: Number(m[3]) })
}

function lowerKeys(o: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return out
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) out[k.toLowerCase()] = v
  return out
}
