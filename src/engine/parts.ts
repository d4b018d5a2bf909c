// The parts of the engine a snapshot may not need, loaded by the apply of
// the first snapshot that does, before its listeners are bound: HTTP/2 (a
// listener with h2c, an HTTP/2 upstream, or TLS, whose ALPN may choose h2)
// and TLS termination. A worker serving an empty or a plain HTTP/1.1
// configuration never loads them: each module loaded costs resident memory
// for its code, and loading ~100 modules at start is enough work for V8 to
// optimise the module loader's own path functions, which maps the
// optimising compilers' code of the node binary into the process
// (docs/performance.md, "Memory at rest").
//
// The hot path reads a part as one field of PARTS, set once and never unset;
// the code that reads it runs only for a connection or upstream the part's
// snapshot made (an h2c listener, a TLS listener, an HTTP/2 upstream), so
// the field is never null there.

import type { ListenerPlan, TargetSpec } from '../compiler/snapshot.ts'

export type H2Part = typeof import('./h2/part.ts')
export type TlsPart = typeof import('./tls/part.ts')

export const PARTS: { h2: H2Part | null; tls: TlsPart | null } = { h2: null, tls: null }

/** Loads the parts `plans` and `targets` need and are not loaded yet; resolves at once when none is missing. */
export async function loadParts(plans: Iterable<ListenerPlan>, targets: ReadonlyMap<string, TargetSpec>): Promise<void> {
  if (PARTS.h2 !== null && PARTS.tls !== null) return
  let h2 = false
  let tls = false
  for (const p of plans) {
    if (p.tls !== null) tls = true
    else if (p.h2c) h2 = true
  }
  if (PARTS.h2 === null && !h2 && !tls) {
    for (const t of targets.values()) {
      if (t.protocol === 'h2c' || t.protocol === 'h2') {
        h2 = true
        break
      }
    }
  }
  if (PARTS.tls === null && tls) PARTS.tls = await import('./tls/part.ts')
  if (PARTS.h2 === null && (h2 || tls)) PARTS.h2 = await import('./h2/part.ts')
}

/** How many parts are loaded (a worker keeps their compiled code for its next start when this grows). */
export function loadedParts(): number {
  return (PARTS.h2 === null ? 0 : 1) + (PARTS.tls === null ? 0 : 1)
}
