// Where each upstream the dashboard shows comes from: the control plane's
// provenance of what is served (Control.served(): the merge records every
// discovered part with the container or service it came from). Everything
// else comes from the store.

import { targetKey } from '../model/address.ts'
import type { Provenance } from '../control/merge.ts'
import { originKey } from '../control/merge.ts'
import { ROUTE_DEFAULT } from '../model/types.ts'
import type { Server } from '../model/types.ts'
import { isServiceRef } from '../model/types.ts'

export function discoveredOrigins(
  served: { config: { servers: readonly Server[] }; origins: ReadonlyMap<string, Provenance> },
  storeKind: string,
): { byKey: ReadonlyMap<string, string>; fallback: string } {
  const byKey = new Map<string, string>()
  if (served.origins.size === 0) return { byKey, fallback: storeKind }
  for (const s of served.config.servers) {
    for (const route of [{ ...s, name: ROUTE_DEFAULT }, ...s.routes]) {
      for (const list of ['upstreams', 'fallbacks'] as const) {
        for (const u of route[list]) {
          if (isServiceRef(u)) continue
          const p = served.origins.get(originKey(s.address, route.name, list, u))
          if (p !== undefined) byKey.set(`${s.address} ${targetKey(u.Target, u.Port)}`, `${p.origin}: ${p.name ?? s.address}`)
        }
      }
    }
  }
  return { byKey, fallback: storeKind }
}
