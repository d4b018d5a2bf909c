// Who may receive traffic through discovery, against real containers on the
// real Docker Engine and the real balancer process: --docker-constraint keeps
// out containers the operator does not trust; a stored route with
// "discovery": "deny" takes no discovered member; a second Compose project
// claiming a host another project holds is refused. Every refusal is listed
// with the reason in GET /status and logged once.
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir } from '../e2e/harness.ts'
import type { Running } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'

const RUN = runId('dtrust')
let bal: Running
let port = 0
let cfg = ''
let bank: Server
const ARGS = (): string[] => ['--config', cfg, '--docker', '--docker-resync', '2s', '--docker-constraint', `label:balancer-test=${RUN} && (project:${RUN}-shop || project:${RUN}-blog)`]

function hit(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 5000 }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (c: string) => (body += c))
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: body.trim() }))
    })
    req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')))
    req.on('error', reject)
    req.end()
  })
}

async function status(): Promise<any> {
  const r = await fetch(`${bal.api}/status`)
  return r.json()
}

async function web(name: string, labels: Record<string, string>): Promise<void> {
  const all = { 'balancer.enable': 'true', 'balancer.address': `127.0.0.1:${port}`, 'balancer.port': '8080', 'balancer-test': RUN, ...labels }
  await docker('run', '-d', '--name', name, '--env', `NAME=${name}`, ...Object.entries(all).flatMap(([k, v]) => ['--label', `${k}=${v}`]), WEB_IMAGE)
}

/** Bodies of n requests to host. */
async function answers(host: string, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push((await hit(host)).body)
  return out
}

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  port = await freePort()
  // The bank's own upstream, in the store, on this host.
  bank = createServer((_req, res) => res.end('store-bank'))
  await new Promise<void>((r) => bank.listen(0, '127.0.0.1', r))
  const a = bank.address()
  const bankPort = typeof a === 'object' && a !== null ? a.port : 0
  cfg = join(tempDir(), 'balancer.json')
  const stored = {
    servers: [
      {
        address: `127.0.0.1:${port}`,
        routes: [{ name: 'bank', filter: { Hosts: ['bank.example.test'] }, upstreams: [{ Target: '127.0.0.1', Port: bankPort }], discovery: 'deny' }],
      },
    ],
  }
  writeFileSync(cfg, `${JSON.stringify(stored)}\n`)
  bal = await startBalancer(ARGS())
}, 300_000)

afterAll(async () => {
  await bal?.stop()
  await new Promise((r) => bank?.close(r))
  await cleanup(RUN)
}, 120_000)

function refusedNamed(st: any, name: string): Array<{ origin: string; name: string; reason: string }> {
  return st.discovery.refused.filter((r: { name: string }) => r.name === name)
}

describe('--docker-constraint', () => {
  it('a container outside the constraint gets no traffic and is listed as refused with the reason', async () => {
    await web(`${RUN}-shop`, { 'balancer.hosts': 'shop.example.test', 'com.docker.compose.project': `${RUN}-shop` })
    await web(`${RUN}-intruder`, { 'balancer.hosts': 'shop.example.test' })
    await until(async () => (await status()).discovery.refused.some((r: { name: string }) => r.name === `${RUN}-intruder`), 10_000, 'the intruder listed as refused')
    const refused = (await status()).discovery.refused.filter((r: { name: string }) => r.name.startsWith(RUN))
    expect(refused).toEqual([{ origin: 'docker', name: `${RUN}-intruder`, reason: expect.stringContaining('does not match --docker-constraint') }])
    await until(async () => (await hit('shop.example.test')).body === `${RUN}-shop`, 10_000, 'the shop container answering')
    expect(new Set(await answers('shop.example.test', 20))).toEqual(new Set([`${RUN}-shop`]))
    expect(bal.logs.filter((l) => l.name === `${RUN}-intruder` && l.level === 40)).toHaveLength(1)
  })
})

describe('stored "discovery": "deny"', () => {
  it("a trusted project's container claiming the stored route's host gets no traffic and is reported", async () => {
    const name = `${RUN}-bank-thief`
    await web(name, { 'balancer.hosts': 'bank.example.test', 'com.docker.compose.project': `${RUN}-blog` })
    await until(async () => refusedNamed(await status(), name).length === 1, 10_000, 'the thief listed as refused')
    expect(refusedNamed(await status(), name)).toEqual([{ origin: 'docker', name, reason: 'route "bank" of server "127.0.0.1:' + port + '" is set to "discovery": "deny" in the store' }])
    expect(new Set(await answers('bank.example.test', 20))).toEqual(new Set(['store-bank']))
  })
})

describe('two Compose projects claiming one host', () => {
  it('the first keeps it, the second is refused and reported once, and a restart does not flip it', async () => {
    const first = `${RUN}-blog-first`
    const second = `${RUN}-blog-second`
    await web(first, { 'balancer.hosts': 'blog.example.test', 'com.docker.compose.project': `${RUN}-shop` })
    await until(async () => (await hit('blog.example.test')).body === first, 10_000, 'the first project answering')
    await web(second, { 'balancer.hosts': 'blog.example.test', 'com.docker.compose.project': `${RUN}-blog` })
    await until(async () => refusedNamed(await status(), second).length === 1, 10_000, 'the second project listed as refused')
    expect(refusedNamed(await status(), second)[0]?.reason).toContain(`is claimed by project:${RUN}-shop`)
    expect(new Set(await answers('blog.example.test', 20))).toEqual(new Set([first]))
    expect(bal.logs.filter((l) => l.name === second && l.level === 40)).toHaveLength(1)
    // A restart sees both at once: creation time still decides.
    await bal.stop()
    bal = await startBalancer(ARGS())
    await until(async () => refusedNamed(await status(), second).length === 1, 10_000, 'the second project refused after the restart')
    await until(async () => (await hit('blog.example.test').catch(() => ({ body: '' }))).body === first, 10_000, 'the first project answering after the restart')
    expect(new Set(await answers('blog.example.test', 20))).toEqual(new Set([first]))
  })
})
