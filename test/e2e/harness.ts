// Runs the real balancer process (bin/balancer.js) for end-to-end tests and
// gives tests its admin URL, its log lines and its exit.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const BIN = resolve(import.meta.dirname, '../../bin/balancer.js')

export interface Running {
  proc: ChildProcess
  api: string
  logs: Array<Record<string, unknown>>
  stderr: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first log line for which pred is true (bounded). */
  waitLog(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

// Every balancer a test file started; whatever is still running when the test
// process exits (a failed beforeAll, a test that threw before its stop) is
// killed with it.
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL')
})

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'balancer-e2e-'))
}

/** A port the OS handed out a moment ago (for config addresses, which need a fixed port). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.on('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => res(port))
    })
  })
}

/**
 * Runs `--workers 1` (the engine in the main process) unless args ask for
 * more. `nofile`: the process's descriptor limit (soft and hard, as
 * `ulimit -n` sets it). `prefix`: a command the balancer runs under (`ip
 * netns exec NAME`, to run it on a test host of its own). `startMs`: how long
 * it may take to start (longer where a test starts many at once).
 */
export async function startBalancer(args: string[], env: Record<string, string> = {}, opts: { nofile?: number; prefix?: string[]; startMs?: number } = {}): Promise<Running> {
  const prefix = opts.prefix ?? []
  const startMs = opts.startMs ?? 60_000
  const workers = args.includes('--workers') || args.some((a) => a.startsWith('--workers=')) ? [] : ['--workers', '1']
  const apiArgs = args.includes('--api') ? [] : ['--api', '127.0.0.1:0']
  const argv = [BIN, ...apiArgs, ...workers, ...args]
  const [cmd, ...rest] = (opts.nofile === undefined ? [...prefix, process.execPath, ...argv] : [...prefix, 'bash', '-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...argv]) as [
    string,
    ...string[],
  ]
  const proc = spawn(cmd, rest, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Array<Record<string, unknown>> = []
  const stderr: string[] = []
  const watchers: Array<() => void> = []
  let buf = ''
  proc.stdout?.setEncoding('utf8')
  proc.stdout?.on('data', (chunk: string) => {
    buf += chunk
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        logs.push({ raw: line })
      }
      for (const w of watchers.slice()) w()
    }
  })
  proc.stderr?.setEncoding('utf8')
  proc.stderr?.on('data', (c: string) => stderr.push(c))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on('exit', (code, signal) => {
      res({ code, signal })
      for (const w of watchers.slice()) w()
    }),
  )
  let exitedFlag = false
  void exited.then(() => (exitedFlag = true))

  const waitLog = (pred: (l: Record<string, unknown>) => boolean, ms = 30_000): Promise<Record<string, unknown>> =>
    new Promise((res, rej) => {
      const check = (): boolean => {
        const hit = logs.find(pred)
        if (hit !== undefined) {
          res(hit)
          return true
        }
        if (exitedFlag || proc.exitCode !== null) {
          rej(new Error(`balancer exited before the expected log line; stderr: ${stderr.join('')}; logs: ${JSON.stringify(logs.slice(-5))}`))
          return true
        }
        return false
      }
      if (check()) return
      const w = (): void => {
        if (check()) {
          clearTimeout(t)
          watchers.splice(watchers.indexOf(w), 1)
        }
      }
      const t = setTimeout(() => {
        watchers.splice(watchers.indexOf(w), 1)
        rej(new Error(`timed out waiting for a log line; stderr: ${stderr.join('')}; logs: ${JSON.stringify(logs.slice(-5))}`))
      }, ms)
      watchers.push(w)
    })

  live.add(proc)
  void exited.then(() => live.delete(proc))
  // A balancer that did not start in time is killed, not left running after the test.
  const started = await waitLog((l) => l.msg === 'balancer started', startMs).catch((err: unknown) => {
    proc.kill('SIGKILL')
    throw err
  })
  const api = `http://${String(started.api)}`
  return {
    proc,
    api,
    logs,
    stderr,
    exited,
    waitLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
}

/** The one bounded wait (test/support/poll.ts), re-exported for the end-to-end tests that import it from here. */
export { until } from '../support/poll.ts'
