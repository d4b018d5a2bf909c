// What every admin route needs, and the one way the API writes.

import type { Control, Edit, WriteResult } from '../control/control.ts'
import { writeListenable } from '../control/listen-check.ts'
import type { PlaneView } from '../control/plane-view.ts'
import { forced } from './write-flags.ts'
import { recordWrite } from './write-log.ts'

export interface AdminContext {
  /** The owner of desired state: reads come from it, every write goes through it. */
  control: Control
  /** The data plane's live state; null when the API runs without an engine. */
  plane: PlaneView | null
  /** Fields the discovery sources add to GET /status's `discovery`; null: none. */
  discovery: (() => Record<string, unknown>) | null
}

/**
 * Every API write: the edit runs on the stored configuration under the
 * store's write lock, is checked once, written durably and applied
 * (Control.write). The edit is pure and may throw a BalancerError; then
 * nothing is written and nothing changes. Resolves once the change is served
 * (or refused, which GET /status shows), so a client can use a new listener
 * right after the 201. A write adding an address this instance cannot
 * listen on is refused with E_CANNOT_LISTEN, unless ?force=true
 * (control/listen-check.ts). The request's write log records what it
 * changed (write-log.ts).
 */
export async function commit(ctx: AdminContext, edit: Edit): Promise<WriteResult> {
  const plane = ctx.plane
  const result = plane === null || forced() ? await ctx.control.write(edit) : await writeListenable(ctx.control, edit, { budget: () => plane.engine().descriptors ?? null })
  recordWrite(result.previous, result.stored, result.state.revision)
  return result
}

export function ifMatchHeader(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['if-match']
  return Array.isArray(v) ? v.join(',') : v
}
