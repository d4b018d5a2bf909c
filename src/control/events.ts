// What the control plane tells its subscribers (the log, GET /status, and
// whoever counts reloads or draws their timeline): each change of what is
// served, applied or refused, once, in order.

import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Problem } from '../model/errors.ts'
import type { Cause } from './reloader.ts'

export type { Cause }

/** The last refusal, as GET /status shows it. */
export interface LastError {
  code: string
  message: string
  problems: Problem[]
  /** ISO 8601 time the error was recorded. */
  at: string
}

export type ControlEvent =
  /** A new desired state is being served: snapshot `version`, made from `revision`. */
  | { type: 'applied'; at: string; revision: string; version: number; causes: readonly Cause[] }
  /**
   * A change was refused and the last good snapshot (`version`) keeps
   * serving: it could not be applied (a port in use: E_LISTEN), or the store
   * holds an invalid configuration (revision null: it never parsed).
   */
  | { type: 'refused'; at: string; revision: string | null; version: number; causes: readonly Cause[]; error: LastError }

export type ControlListener = (e: ControlEvent) => void

export function lastErrorOf(err: Error, at: Date): LastError {
  const be = err instanceof BalancerError ? err : null
  return { code: be?.code ?? ErrorCode.Internal, message: err.message, problems: be?.problems ?? [], at: at.toISOString() }
}
