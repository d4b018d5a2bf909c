// Whichever instance the CA's validation reaches answers it: two balancer
// instances on one etcd, each on its own host (the second in a network
// namespace of this test's, joined by a veth link), and the CA's DNS
// pointing every name at the second. Only the first orders (the second runs
// with --acme-directory off, as an instance without a way to the CA would);
// the CA validates on the second, which answers from the challenge the first
// wrote to the store; both then serve the certificate.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeHost } from '../support/netns.ts'
import type { TestHost } from '../support/netns.ts'
import { freePorts } from '../support/services/ports.ts'
import { startPebble } from '../support/services/pebble.ts'
import type { Pebble } from '../support/services/pebble.ts'
import { startEtcd } from '../support/services/etcd.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { within } from '../support/poll.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let host: TestHost
let pebble: Pebble
let etcd: Etcd
let up: HttpUpstream
let a: Running
let b: Running
let plain: number
let tls: number
const TOKEN = 'netns-test-token-0123456789'

async function api(bal: Running, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

beforeAll(async () => {
  host = makeHost()
  ;[plain, tls] = (await freePorts(2)) as [number, number]
  etcd = await startEtcd({ alsoListenOn: host.hostIp })
  pebble = await startPebble({ httpPort: plain, tlsPort: tls, resolveTo: host.ip })
  // The upstream listens where both hosts reach it.
  up = await httpUpstream((req, res) => res.end(`hello ${req.headers.host}`), { host: host.hostIp })
  const store = `etcd://${host.hostIp}:${etcd.endpoint.split(':')[1]}/acme-netns`
  a = await startBalancer(['--store', store, '--token', TOKEN, '--acme-directory', pebble.directory, '--acme-ca', pebble.listenerCaFile, '--acme-retry', '1s'])
  b = await startBalancer(['--store', store, '--token', TOKEN, '--api', `${host.ip}:0`, '--acme-directory', 'off'], {}, { prefix: host.prefix })
}, 60_000)

afterAll(async () => {
  await a?.stop()
  await b?.stop()
  await up?.close()
  await pebble?.close()
  await etcd?.close()
  host?.close()
})

describe('the challenge answered by the instance that did not order', () => {
  it('the CA validates on the second host, which answers from the store; both serve the certificate', async () => {
    const to = [{ Target: host.hostIp, Port: up.port }]
    expect((await api(a, 'POST', '/server', { address: `:${plain}`, upstreams: to })).status).toBe(201)
    expect((await api(a, 'POST', '/server', { address: `:${tls}`, tls: { Acme: { Hosts: ['two-hosts.test'] } }, upstreams: to })).status).toBe(201)
    const valid = async (bal: Running): Promise<boolean> =>
      ((await api(bal, 'GET', '/cert')).json as Array<{ name: string; state: string }>).some((c) => c.name === 'two-hosts.test' && (c.state === 'valid' || c.state === 'expiring'))
    await until(async () => (await valid(a)) && (await valid(b)), 90_000, 'the certificate on both hosts')
    await a.waitLog((l) => l.msg === 'ACME certificate issued')
    expect(b.logs.some((l) => String(l.msg).startsWith('ACME'))).toBe(false)
    // The CA could reach the second host only (its DNS says so, and the first is not on that address).
    const root = join(tempDir(), 'root.pem')
    writeFileSync(root, await pebble.root())
    for (const addr of ['127.0.0.1', host.ip]) {
      const out = await within(
        new Promise<string>((resolve) => {
          const p = spawn('curl', ['-sS', '--max-time', '5', '--cacert', root, '--resolve', `two-hosts.test:${tls}:${addr}`, `https://two-hosts.test:${tls}/`])
          let s = ''
          p.stdout.on('data', (d: Buffer) => (s += d.toString()))
          p.stderr.on('data', (d: Buffer) => (s += d.toString()))
          p.once('close', () => resolve(s))
        }),
        10_000,
        'curl',
      )
      expect(out).toBe(`hello two-hosts.test:${tls}`)
    }
  }, 120_000)
})
