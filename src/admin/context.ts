// What every admin route needs, and the one way the API writes.

import type { Control, Edit, WriteResult } from '../control/control.ts'
import type { PlaneView } from '../control/plane-view.ts'
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
 * right after the 201. The request's write log records what it changed
 * (write-log.ts).
 */
export async function commit(ctx: AdminContext, edit: Edit): Promise<WriteResult> {
  const result = await ctx.control.write(edit)
  recordWrite(result.previous, result.stored, result.state.revision)
  return result
}

export function ifMatchHeader(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['if-match']
  return Array.isArray(v) ? v.join(',') : v
}
