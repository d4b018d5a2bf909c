// Where each upstream the dashboard shows comes from, derived from what the
// discovery sources published (Desired.discovered: servers with the
// container or service each came from). Everything else comes from the
// store. A read-only adapter over existing state, not a record of its own:
// the control layer's provenance view replaces it when it lands.

import { targetKey } from '../compiler/compile.ts'
import type { Server } from '../model/types.ts'

export function discoveredOrigins(
  discovered: ReadonlyArray<{ origin: string; servers: Server[]; names: string[] }>,
  storeKind: string,
): { byKey: ReadonlyMap<string, string>; fallback: string } {
  const byKey = new Map<string, string>()
  for (const d of discovered) {
    d.servers.forEach((s, i) => {
      const label = `${d.origin}: ${d.names[i] ?? s.address}`
      for (const route of [s, ...s.routes]) {
        for (const u of [...route.upstreams, ...route.fallbacks]) byKey.set(`${s.address} ${targetKey(u.Target, u.Port)}`, label)
      }
    })
  }
  return { byKey, fallback: storeKind }
}
