// Controls an upstream HTTP server running in a child process
// (services/http-child.ts): start, SIGKILL, SIGSTOP/SIGCONT, restart on the
// same port, and switch what it answers. Children are killed when the test
// process exits.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { httpGet } from './client.ts'

const SCRIPT = fileURLToPath(new URL('./services/http-child.ts', import.meta.url))
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

export class ChildUpstream {
  readonly name: string
  port = 0
  #proc: ChildProcess | null = null

  private constructor(name: string) {
    this.name = name
  }

  static async start(name: string, port = 0): Promise<ChildUpstream> {
    const c = new ChildUpstream(name)
    await c.#spawn(port)
    return c
  }

  get key(): string {
    return `127.0.0.1:${this.port}`
  }

  async #spawn(port: number): Promise<void> {
    const p = spawn(process.execPath, [SCRIPT, this.name, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
    running.add(p)
    p.on('exit', () => running.delete(p))
    this.#proc = p
    this.port = await new Promise<number>((resolve, reject) => {
      let out = ''
      const t = setTimeout(() => reject(new Error(`${this.name}: no PORT line within 10 s`)), 10_000)
      p.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /PORT (\d+)/.exec(out)
        if (m !== null) {
          clearTimeout(t)
          resolve(Number(m[1]))
        }
      })
      p.once('exit', (code, sig) => {
        clearTimeout(t)
        reject(new Error(`${this.name} exited during start (${code ?? sig})`))
      })
    })
  }

  /** Changes what it answers: health status of /healthz, status and delay of everything else. */
  async set(mode: { health?: number; status?: number; delay?: number }): Promise<void> {
    const q = Object.entries(mode)
      .map(([k, v]) => `${k}=${v}`)
      .join('&')
    const r = await httpGet(this.port, `/__set?${q}`)
    if (r.status !== 200) throw new Error(`${this.name}: /__set answered ${r.status}`)
  }

  async #signal(sig: NodeJS.Signals, waitExit: boolean): Promise<void> {
    const p = this.#proc
    if (p === null || p.exitCode !== null || p.signalCode !== null) return
    const gone = new Promise<void>((r) => p.once('exit', () => r()))
    p.kill(sig)
    if (waitExit) await gone
  }

  /** SIGKILL; resolves once the process is gone (its port refuses connections from then on). */
  async kill(): Promise<void> {
    await this.#signal('SIGCONT', false)
    await this.#signal('SIGKILL', true)
    this.#proc = null
  }

  freeze(): Promise<void> {
    return this.#signal('SIGSTOP', false)
  }

  thaw(): Promise<void> {
    return this.#signal('SIGCONT', false)
  }

  /** Starts the server again on its port (after kill()). */
  async restart(): Promise<void> {
    if (this.#proc !== null) throw new Error(`${this.name} is still running`)
    await this.#spawn(this.port)
  }

  async close(): Promise<void> {
    await this.kill()
  }
}
