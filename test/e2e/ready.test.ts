// GET /ready and `balancer healthcheck` against the real binary: not ready
// while an upstream waits for its first active check, ready once the check
// has a result (passed or failed: a down app is no reason to hold the
// balancer back), answered without the token (and telling nothing else); the healthcheck
// command's exit status follows it.
import { execFile } from 'node:child_process'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { BIN, freePort, startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

const run = promisify(execFile)
const TOKEN = 'ready-test-token-0123456789'
let bal: Running | null = null
let other: Running | null = null
let up: Server | null = null

afterEach(async () => {
  await bal?.stop('SIGKILL')
  await other?.stop('SIGKILL')
  bal = null
  other = null
  await new Promise<void>((r) => (up === null ? r() : up.close(() => r())))
  up = null
})

async function healthcheck(api: string, socket?: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(process.execPath, [BIN, 'healthcheck', '--api', api.replace('http://', ''), ...(socket === undefined ? [] : ['--health-socket', socket])])
    return { code: 0, out: stdout.trim() }
  } catch (err) {
    const e = err as { code: number; stdout: string }
    return { code: e.code, out: e.stdout.trim() }
  }
}

interface Gate {
  /** Answers the checks held so far, and every later one, with `status`. */
  open(status?: number): void
}

/** An upstream whose health path holds every check unanswered until `gate.open()`. */
async function gatedUpstream(): Promise<{ port: number; gate: Gate }> {
  const held: Array<() => void> = []
  let status = 0
  up = createServer((req, res) => {
    const answer = (): void => {
      res.statusCode = req.url === '/h' ? status : 200
      res.end('ok\n')
    }
    if (req.url === '/h' && status === 0) held.push(answer)
    else answer()
  })
  await new Promise<void>((r) => up?.listen(0, '127.0.0.1', r))
  const gate: Gate = {
    open(s = 200) {
      status = s
      for (const f of held.splice(0)) f()
    },
  }
  return { port: (up.address() as { port: number }).port, gate }
}

/** One server whose upstream is checked every 30 s, each check allowed 20 s: the first result comes when the upstream gives it. */
async function configWithCheckedUpstream(upPort: number): Promise<string> {
  const file = join(tempDir(), 'balancer.json')
  const port = await freePort()
  writeFileSync(
    file,
    JSON.stringify({ servers: [{ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: upPort }], health: { Path: '/h', Interval: '30s', Timeout: '20s', Fall: 100 } }] }),
  )
  return file
}

async function readyOf(api: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`${api}/ready`)
  return { status: r.status, body: await r.text() }
}

describe('readiness', () => {
  it('is 503 until the first active check of an upstream has a result, then 200; no token needed, nothing revealed', async () => {
    const { port, gate } = await gatedUpstream()
    const file = await configWithCheckedUpstream(port)
    bal = await startBalancer(['--config', file, '--token', TOKEN])
    const api = bal.api

    expect(await readyOf(api)).toEqual({ status: 503, body: '{"state":"starting"}' })
    expect(await healthcheck(api)).toEqual({ code: 1, out: '503 {"state":"starting"}' })
    // The rest of the API still needs the token.
    expect((await fetch(`${api}/status`)).status).toBe(401)

    gate.open()
    await until(async () => (await readyOf(api)).status === 200, 5000, 'GET /ready to answer 200')
    expect(await readyOf(api)).toEqual({ status: 200, body: '{"state":"ready"}' })
    expect(await healthcheck(api)).toEqual({ code: 0, out: '200 {"state":"ready"}' })
  })

  it('an upstream that is down does not hold readiness: ready once its first check has failed (an app down on a node must not block the balancer starting or upgrading there)', async () => {
    const { port, gate } = await gatedUpstream()
    bal = await startBalancer(['--config', await configWithCheckedUpstream(port), '--token', TOKEN])
    expect(await readyOf(bal.api)).toEqual({ status: 503, body: '{"state":"starting"}' })
    gate.open(503)
    const api = bal.api
    await until(async () => (await readyOf(api)).status === 200, 5000, 'GET /ready to answer 200')
    const status = (await (await fetch(`${api}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { engine: { upstreams: Array<{ port: number; state: string }> } }
    expect(status.engine.upstreams.find((u) => u.port === port)?.state).toBe('pending')
  })

  it('two balancers share the API port (SO_REUSEPORT); each health socket answers for its own process', async () => {
    const apiPort = await freePort()
    const dir = tempDir()
    bal = await startBalancer(['--config', join(dir, 'a.json'), '--api', `127.0.0.1:${apiPort}`, '--health-socket', join(dir, 'a.sock')])
    const { port, gate } = await gatedUpstream()
    other = await startBalancer(['--config', await configWithCheckedUpstream(port), '--api', `127.0.0.1:${apiPort}`, '--health-socket', join(dir, 'b.sock')])
    const api = `http://127.0.0.1:${apiPort}`
    expect(await healthcheck(api, join(dir, 'a.sock'))).toEqual({ code: 0, out: '200 {"state":"ready"}' })
    expect(await healthcheck(api, join(dir, 'b.sock'))).toEqual({ code: 1, out: '503 {"state":"starting"}' })
    gate.open()
    await until(async () => (await healthcheck(api, join(dir, 'b.sock'))).code === 0, 5000, 'the second balancer to be ready')
    // SIGTERM: the first one drains and leaves; the port keeps answering.
    await bal.stop('SIGTERM')
    expect((await fetch(`${api}/ready`)).status).toBe(200)
  })

  it('the healthcheck command fails when nothing answers', async () => {
    const port = await freePort()
    const r = await healthcheck(`http://127.0.0.1:${port}`)
    expect(r.code).toBe(1)
    expect(r.out).toContain('ECONNREFUSED')
  })
})
