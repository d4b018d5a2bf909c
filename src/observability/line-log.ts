// The engine workers' logger: the same JSON lines as the main process's pino
// logger (log.ts): `level` as pino's numbers, ISO `time`, `pid`, the child
// bindings, the fields, `msg`; an Error under `err` as pino's serializer
// writes it (`type`, `message`, `stack` and its own fields).
//
// Why not pino here: a worker logs a handful of lines per state change, and
// pino (with the thread-stream and worker_threads modules it loads) costs
// 1.8 MiB resident in every worker process, measured with Node's compile
// cache warm (bench/run.ts --only memory: the at-rest table). Each line is
// one synchronous write, so nothing is lost when a worker exits at once.

import { writeSync } from 'node:fs'

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const
type Level = keyof typeof LEVELS

export interface LineLogger {
  trace(obj: object, msg: string): void
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
  fatal(obj: object, msg: string): void
  child(bindings: object): LineLogger
  /** Lines are written as they are logged; kept for the Logger shape. */
  flush(): void
}

/** level: pino's names (`info`, `warn`, ...; `silent` writes nothing). fd: where lines go (1: stdout). */
export function createLineLogger(level: string, bindings: object = {}, fd = 1): LineLogger {
  const min = level in LEVELS ? LEVELS[level as Level] : level === 'silent' ? Infinity : LEVELS.info
  const base = { pid: process.pid, ...bindings }
  const at =
    (name: Level) =>
    (obj: object, msg: string): void => {
      const n = LEVELS[name]
      if (n < min) return
      const line: Record<string, unknown> = { level: n, time: new Date().toISOString(), ...base }
      for (const [k, v] of Object.entries(obj)) line[k] = v instanceof Error ? serializeError(v) : v
      line.msg = msg
      try {
        writeSync(fd, `${JSON.stringify(line)}\n`)
      } catch {
        // stdout closed or full: a log line is not worth a crash.
      }
    }
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => createLineLogger(level, { ...bindings, ...more }, fd),
    flush: () => undefined,
  }
}

function serializeError(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.constructor.name, message: err.message, stack: err.stack ?? '' }
  for (const [k, v] of Object.entries(err)) if (!(k in out)) out[k] = v
  return out
}
