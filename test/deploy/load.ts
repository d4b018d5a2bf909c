// Load for the deployment tests: `concurrency` clients send GET / back to
// back to 127.0.0.1:port until stopped (bounded by maxMs), either on
// keep-alive connections or on a new connection per request (what stresses
// a listener hand-over: every request is a new accept). Every failure is
// counted by kind; 200 answers by body (which demo task answered).
import { Agent, request } from 'node:http'

export interface LoadResult {
  ok: number
  failed: number
  failures: Record<string, number>
  byBody: Record<string, number>
  /** When the first few failures happened (epoch ms and kind), to set beside the containers' events. */
  firstFailures: Array<[number, string]>
}

export type LoadMode = 'keep-alive' | 'new-connection'

function get(port: number, agent: Agent | false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, timeout: 10_000 }, (r) => {
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

export function load(port: number, mode: LoadMode, concurrency = 4, maxMs = 120_000): { stop(): Promise<LoadResult>; result: LoadResult } {
  const agent = mode === 'keep-alive' ? new Agent({ keepAlive: true, maxSockets: concurrency }) : false
  const result: LoadResult = { ok: 0, failed: 0, failures: {}, byBody: {}, firstFailures: [] }
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
          if (result.firstFailures.length < 5) result.firstFailures.push([Date.now(), `status ${r.status}`])
        }
      } catch (err) {
        result.failed++
        const k = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        result.failures[k] = (result.failures[k] ?? 0) + 1
        if (result.firstFailures.length < 5) result.firstFailures.push([Date.now(), k])
      }
    }
  }
  const workers = Array.from({ length: concurrency }, worker)
  return {
    result,
    async stop() {
      running = false
      await Promise.all(workers)
      if (agent !== false) agent.destroy()
      return result
    },
  }
}

/** Runs both kinds of load while `during` runs, and a moment of each after it, and returns both results. */
export async function underLoad(port: number, during: () => Promise<unknown>): Promise<{ keepAlive: LoadResult; perRequest: LoadResult; ms: number }> {
  const a = load(port, 'keep-alive', 4)
  const b = load(port, 'new-connection', 4)
  // Both kinds must be flowing before the change starts.
  const t = Date.now()
  while ((a.result.ok === 0 || b.result.ok === 0) && Date.now() - t < 10_000) await new Promise((r) => setTimeout(r, 20))
  const t0 = Date.now()
  await during()
  const ms = Date.now() - t0
  // Requests after the change: served by the new state.
  const okA = a.result.ok
  const okB = b.result.ok
  const t1 = Date.now()
  while ((a.result.ok < okA + 50 || b.result.ok < okB + 50) && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 20))
  return { keepAlive: await a.stop(), perRequest: await b.stop(), ms }
}
