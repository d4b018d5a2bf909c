// Steady load for the traffic tests: `concurrency` keep-alive clients send
// GET / back to back to a loopback address until stopped (bounded by maxMs),
// counting answers by body (the upstream container's name) and every failure.
import { Agent, request } from 'node:http'
import { until } from '../support/poll.ts'

export interface LoadResult {
  ok: number
  failed: number
  /** Failures by kind: `status 502`, `ECONNRESET`, ... */
  failures: Record<string, number>
  /** 200 answers by body. */
  byBody: Record<string, number>
}

export function get(port: number, agent?: Agent, host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent: agent ?? false, timeout: 10_000 }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: body.trim() }))
      r.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')))
    req.on('error', reject)
    req.end()
  })
}

export function steadyLoad(port: number, concurrency = 4, maxMs = 60_000): { stop(): Promise<LoadResult>; result: LoadResult } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const result: LoadResult = { ok: 0, failed: 0, failures: {}, byBody: {} }
  let running = true
  const deadline = Date.now() + maxMs
  const worker = async (): Promise<void> => {
    while (running && Date.now() < deadline) {
      try {
        const r = await get(port, agent)
        if (r.status === 200) {
          result.ok++
          result.byBody[r.body] = (result.byBody[r.body] ?? 0) + 1
        } else {
          result.failed++
          result.failures[`status ${r.status}`] = (result.failures[`status ${r.status}`] ?? 0) + 1
        }
      } catch (err) {
        result.failed++
        const k = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        result.failures[k] = (result.failures[k] ?? 0) + 1
      }
    }
  }
  const workers = Array.from({ length: concurrency }, worker)
  return {
    result,
    async stop() {
      running = false
      await Promise.all(workers)
      agent.destroy()
      return result
    },
  }
}

/** Waits (bounded) until the load has had n more answers, good or failed, than when called. */
export async function moreAnswers(load: { result: LoadResult }, n: number, ms = 30_000): Promise<void> {
  const base = load.result.ok + load.result.failed
  await until(() => load.result.ok + load.result.failed >= base + n, ms, `${n} more answers under load`)
}

/** Polls GET / until pred holds for an answer (every 10 ms, bounded); returns when it did. */
export async function firstAnswer(port: number, pred: (r: { status: number; body: string }) => boolean, ms: number, what: string): Promise<number> {
  const end = Date.now() + ms
  let last = ''
  for (;;) {
    try {
      const r = await get(port)
      if (pred(r)) return Date.now()
      last = `${r.status} ${r.body.slice(0, 80)}`
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last answer: ${last}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
