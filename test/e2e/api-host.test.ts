// The balancer process with --api-host: curl reaches the API by localhost,
// 127.0.0.1, [::1] and the added name; a rebinding request (another name in
// Host) is refused and the configuration file is left as it was.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBalancer, tempDir } from './harness.ts'
import type { Running } from './harness.ts'

async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await promisify(execFile)('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', ...args], { encoding: 'utf8' })
  const i = stdout.lastIndexOf('\n')
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) }
}

describe('--api-host', () => {
  let bal: Running
  let port = 0
  const dir = tempDir()
  const cfg = join(dir, 'balancer.json')
  const STORED = '{"servers":[]}\n'

  beforeAll(async () => {
    writeFileSync(cfg, STORED)
    bal = await startBalancer(['--config', cfg, '--api-host', 'admin.example.test'], { BALANCER_API_HOST: 'ops.example.test' })
    port = Number(new URL(bal.api).port)
  })
  afterAll(async () => {
    await bal?.stop()
  })

  it('curl by localhost, 127.0.0.1, [::1]-style Host and the added names works', async () => {
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `admin.example.test:${port}`, 'ops.example.test']) {
      const r = await curl(['-H', `Host: ${host}`, `http://127.0.0.1:${port}/`])
      expect([host, r.status]).toEqual([host, 200])
    }
    const plain = await curl([`http://localhost:${port}/status`])
    expect(plain.status).toBe(200)
  })

  it('a rebinding request is refused with 421 and the file is byte-identical', async () => {
    const h = ['-H', `Host: evil.test:${port}`, '-H', `Origin: http://evil.test:${port}`]
    expect((await curl([...h, `http://127.0.0.1:${port}/`])).status).toBe(421)
    const w = await curl([...h, '-X', 'POST', '--data', '{"address":":8080"}', `http://127.0.0.1:${port}/server`])
    expect(w.status).toBe(421)
    expect(JSON.parse(w.body).code).toBe('E_MISDIRECTED')
    expect(readFileSync(cfg, 'utf8')).toBe(STORED)
  })
})
