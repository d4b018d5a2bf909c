// A real server process for tests: started, stopped, frozen (SIGSTOP) and
// resumed by its owner. Children are killed when the test process exits, so a
// crashed test file leaves no server behind.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs'
import type { WriteStream } from 'node:fs'

const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

export interface ServiceSpec {
  /** Shown in errors: `etcd`, `zookeeper`. */
  name: string
  bin: string
  args: string[]
  /** Which Debian package ships bin; named in the error when it is missing. */
  pkg: string
  cwd: string
  /** The process's stdout and stderr go here, for a failing test to read. */
  logFile: string
  /** Resolves once the server answers; must stop trying by itself (bounded). */
  ready(): Promise<void>
  env?: Record<string, string>
}

/** Throws a message naming the package to install when a binary is missing (tests fail, never skip). */
export function requireBinary(bin: string, pkg: string, name: string): void {
  if (!existsSync(bin)) {
    throw new Error(`${name}: ${bin} not found; install the Debian package "${pkg}" (scripts/system-deps.sh does it)`)
  }
}

export class ServiceProcess {
  readonly spec: ServiceSpec
  #proc: ChildProcess | null = null
  #log: WriteStream | null = null

  constructor(spec: ServiceSpec) {
    requireBinary(spec.bin, spec.pkg, spec.name)
    this.spec = spec
  }

  get pid(): number | null {
    return this.#proc?.pid ?? null
  }

  async start(): Promise<void> {
    if (this.#proc !== null) throw new Error(`${this.spec.name} is already running`)
    this.#log ??= createWriteStream(this.spec.logFile, { flags: 'a' })
    const p = spawn(this.spec.bin, this.spec.args, {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    running.add(p)
    p.stdout?.pipe(this.#log, { end: false })
    p.stderr?.pipe(this.#log, { end: false })
    p.on('exit', () => running.delete(p))
    this.#proc = p
    const exited = new Promise<never>((_, reject) => p.once('exit', (code, sig) => reject(new Error(`${this.spec.name} exited during start (${code ?? sig}); see ${this.spec.logFile}`))))
    exited.catch(() => undefined)
    await Promise.race([this.spec.ready(), exited])
  }

  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  async stop(): Promise<void> {
    const p = this.#proc
    if (p === null) return
    this.#proc = null
    if (p.exitCode !== null || p.signalCode !== null) return
    const gone = new Promise<void>((r) => p.once('exit', () => r()))
    p.kill('SIGCONT')
    p.kill('SIGTERM')
    const t = setTimeout(() => p.kill('SIGKILL'), 5000)
    await gone
    clearTimeout(t)
  }

  /**
   * The process stops running but keeps its sockets open: clients see silence,
   * not a refusal. Returns once every thread of it has stopped (a thread busy
   * on a loaded machine stops a moment after the signal, and could still
   * answer a request sent after freeze()).
   */
  freeze(): void {
    const p = this.#proc
    if (p === null || p.pid === undefined) return
    p.kill('SIGSTOP')
    const end = Date.now() + 2000
    const tick = new Int32Array(new SharedArrayBuffer(4))
    while (!allStopped(p.pid) && Date.now() < end) Atomics.wait(tick, 0, 0, 2)
  }

  resume(): void {
    this.#proc?.kill('SIGCONT')
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }

  async close(): Promise<void> {
    await this.stop()
    this.#log?.end()
    this.#log = null
  }
}

/** Retries fn until it resolves, for at most ms. */
export async function retryUntil(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms
  let last: unknown = null
  for (;;) {
    try {
      if (await fn()) return
    } catch (err) {
      last = err
    }
    if (Date.now() > end) throw new Error(`${what}: not ready after ${ms} ms${last === null ? '' : ` (${String(last)})`}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Every thread of pid is stopped (state T in /proc), or the process is gone. */
function allStopped(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).every((t) => {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
      return state === 'T' || state === 't' || state === 'Z' || state === 'X'
    })
  } catch {
    return true
  }
}
