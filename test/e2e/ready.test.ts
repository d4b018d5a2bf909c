// GET /ready and `balancer healthcheck` against the real binary: not ready
// while an upstream waits for its first active check, ready once it passes,
// answered without the token (and telling nothing else); the healthcheck
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

/** An upstream whose health path answers only once `gate.open`. */
async function gatedUpstream(gate: { open: boolean }): Promise<number> {
  up = createServer((req, res) => {
    if (req.url === '/h' && !gate.open) return // no answer: the check times out
    res.end('ok\n')
  })
  await new Promise<void>((r) => up?.listen(0, '127.0.0.1', r))
  return (up.address() as { port: number }).port
}

async function configWithCheckedUpstream(upPort: number): Promise<string> {
  const file = join(tempDir(), 'balancer.json')
  const port = await freePort()
  writeFileSync(file, JSON.stringify({ servers: [{ address: `127.0.0.1:${port}`, upstreams: [{ Target: '127.0.0.1', Port: upPort }], health: { Path: '/h', Interval: '300ms', Timeout: '200ms', Fall: 100 } }] }))
  return file
}

describe('readiness', () => {
  it('is 503 until the first active check of an upstream passes, then 200; no token needed, nothing revealed', async () => {
    const gate = { open: false }
    const file = await configWithCheckedUpstream(await gatedUpstream(gate))
    bal = await startBalancer(['--config', file, '--token', TOKEN])

    const ready = async (): Promise<{ status: number; body: string }> => {
      const r = await fetch(`${bal?.api}/ready`)
      return { status: r.status, body: await r.text() }
    }
    expect(await ready()).toEqual({ status: 503, body: '{"state":"starting"}' })
    expect(await healthcheck(bal.api)).toEqual({ code: 1, out: '503 {"state":"starting"}' })
    // The rest of the API still needs the token.
    expect((await fetch(`${bal.api}/status`)).status).toBe(401)

    gate.open = true
    await until(async () => (await ready()).status === 200, 5000, 'GET /ready to answer 200')
    expect(await ready()).toEqual({ status: 200, body: '{"state":"ready"}' })
    expect(await healthcheck(bal.api)).toEqual({ code: 0, out: '200 {"state":"ready"}' })
  })

  it('two balancers share the API port (SO_REUSEPORT); each health socket answers for its own process', async () => {
    const apiPort = await freePort()
    const dir = tempDir()
    bal = await startBalancer(['--config', join(dir, 'a.json'), '--api', `127.0.0.1:${apiPort}`, '--health-socket', join(dir, 'a.sock')])
    const gate = { open: false }
    other = await startBalancer(['--config', await configWithCheckedUpstream(await gatedUpstream(gate)), '--api', `127.0.0.1:${apiPort}`, '--health-socket', join(dir, 'b.sock')])
    const api = `http://127.0.0.1:${apiPort}`
    expect(await healthcheck(api, join(dir, 'a.sock'))).toEqual({ code: 0, out: '200 {"state":"ready"}' })
    expect(await healthcheck(api, join(dir, 'b.sock'))).toEqual({ code: 1, out: '503 {"state":"starting"}' })
    gate.open = true
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
