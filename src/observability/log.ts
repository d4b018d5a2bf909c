// The process logger: JSON lines on stdout (pino). Components get a child
// logger with their name; they log state changes, never per request.

import { pino } from 'pino'
import type { Logger } from 'pino'

export type { Logger }

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
}
