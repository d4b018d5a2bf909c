// wrk as a background load for as long as a test's events take: started with
// a long -d bound, stopped with SIGINT (wrk then prints its summary as at the
// end of its duration). The summary's counts say whether any request failed:
// socket errors (connect, read, write, timeout) and non-2xx/3xx responses.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

export interface WrkResult {
  requests: number
  /** connect + read + write + timeout errors. */
  socketErrors: number
  /** Responses that were not 2xx or 3xx. */
  non2xx: number
  /** wrk's whole output, for messages. */
  out: string
}

export class Wrk {
  readonly #p: ChildProcess
  readonly #done: Promise<{ code: number | null; out: string }>

  /** Starts wrk on url: `threads` threads, `connections` kept-alive connections, at most maxSeconds. */
  constructor(url: string, opts: { threads?: number; connections?: number; maxSeconds?: number } = {}) {
    this.#p = spawn('wrk', ['-t', String(opts.threads ?? 1), '-c', String(opts.connections ?? 4), '-d', `${opts.maxSeconds ?? 120}s`, url], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    this.#p.stdout?.on('data', (d: Buffer) => (out += d.toString()))
    this.#p.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    this.#done = new Promise((resolve, reject) => {
      this.#p.once('error', reject)
      this.#p.once('close', (code) => resolve({ code, out }))
    })
  }

  /** Stops wrk (SIGINT) and reads its summary. */
  async stop(): Promise<WrkResult> {
    if (this.#p.exitCode === null) this.#p.kill('SIGINT')
    const { code, out } = await this.#done
    const requests = /(\d+) requests in/.exec(out)
    if (code !== 0 || requests === null) throw new Error(`wrk exited ${code} without a summary: ${out}`)
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
    return {
      requests: Number(requests[1]),
      socketErrors: sock === null ? 0 : sock.slice(1).reduce((n, x) => n + Number(x), 0),
      non2xx: non2xx === null ? 0 : Number(non2xx[1]),
      out,
    }
  }

  /** Kills wrk without reading anything (cleanup after a failed test). */
  kill(): void {
    if (this.#p.exitCode === null) this.#p.kill('SIGKILL')
  }
}
