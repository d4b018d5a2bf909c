// ACME shared by balancer instances through the store, with Pebble: two
// instances on one etcd (and two on one ZooKeeper) order a certificate
// once and both serve it; the instance holding the order's lease killed in
// the middle of the order, and the other finishing it once the lease is gone.

import { spawn } from 'node:child_process'
import { Etcd3 } from 'etcd3'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePorts } from '../support/services/ports.ts'
import { startPebble } from '../support/services/pebble.ts'
import type { Pebble } from '../support/services/pebble.ts'
import { startEtcd } from '../support/services/etcd.ts'
import type { Etcd } from '../support/services/etcd.ts'
import { startZooKeeper } from '../support/services/zookeeper.ts'
import type { ZooKeeper } from '../support/services/zookeeper.ts'
import { within } from '../support/poll.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'
import { startBalancer, tempDir, until } from './harness.ts'
import type { Running } from './harness.ts'

let pebble: Pebble
let etcd: Etcd
let zk: ZooKeeper
let up: HttpUpstream
let plain: number
let tls: number
let rootFile: string
const all: Running[] = []

async function api(bal: Running, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${bal.api}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

/** valid: the certificate is stored and served (what the listing says of its dates: valid or expiring). */
async function state(bal: Running, name: string): Promise<string | undefined> {
  const c = ((await api(bal, 'GET', '/cert')).json as Array<{ name: string; state: string }>).find((x) => x.name === name)
  return c === undefined ? undefined : c.state === 'expiring' ? 'valid' : c.state
}

function curl(host: string): Promise<{ code: number | null; out: string }> {
  return within(
    new Promise((resolve, reject) => {
      const p = spawn('curl', ['-sS', '--max-time', '5', '--cacert', rootFile, '--resolve', `${host}:${tls}:127.0.0.1`, `https://${host}:${tls}/`], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (d: Buffer) => (out += d.toString()))
      p.stderr.on('data', (d: Buffer) => (out += d.toString()))
      p.once('error', reject)
      p.once('close', (code) => resolve({ code, out }))
    }),
    10_000,
    'curl',
  )
}

async function pair(store: string, env: Record<string, string> = {}): Promise<[Running, Running]> {
  const args = ['--store', store, '--acme-directory', pebble.directory, '--acme-ca', pebble.listenerCaFile, '--acme-retry', '1s']
  const bals = await Promise.all([startBalancer(args, env), startBalancer(args, env)])
  all.push(...bals)
  return bals as [Running, Running]
}

async function configure(bal: Running, host: string): Promise<void> {
  const to = [{ Target: '127.0.0.1', Port: up.port }]
  expect((await api(bal, 'POST', '/server', { address: `:${plain}`, upstreams: to })).status).toBe(201)
  expect((await api(bal, 'POST', '/server', { address: `:${tls}`, tls: { Acme: { Hosts: [host] } }, upstreams: to })).status).toBe(201)
}

const issued = (bals: Running[], host: string): number => bals.reduce((n, b) => n + b.logs.filter((l) => l.msg === 'ACME certificate issued' && l.cert === host).length, 0)

beforeAll(async () => {
  ;[plain, tls] = (await freePorts(2)) as [number, number]
  ;[pebble, etcd, zk, up] = await Promise.all([startPebble({ httpPort: plain, tlsPort: tls }), startEtcd(), startZooKeeper(), httpUpstream((req, res) => res.end(`hello ${req.headers.host}`))])
  rootFile = join(tempDir(), 'root.pem')
  writeFileSync(rootFile, await pebble.root())
}, 60_000)

afterAll(async () => {
  for (const b of all) await b.stop()
  await up?.close()
  await pebble?.close()
  await etcd?.close()
  await zk?.close()
})

async function orderOnceBothServe(store: string, host: string): Promise<void> {
  const [a, b] = await pair(store)
  try {
    await configure(a, host)
    await until(async () => (await state(a, host)) === 'valid' && (await state(b, host)) === 'valid', 90_000, 'both instances to hold the certificate')
    // The log line follows the write to the store by a moment.
    await until(() => issued([a, b], host) > 0, 10_000, 'the issuing instance to log it')
    expect(issued([a, b], host)).toBe(1)
    for (let i = 0; i < 4; i++) expect((await curl(host)).out).toBe(`hello ${host}:${tls}`)
    // Both listen on the ports; with a gone, every connection is b's.
    await a.stop()
    for (let i = 0; i < 3; i++) expect((await curl(host)).out).toBe(`hello ${host}:${tls}`)
  } finally {
    await a.stop()
    await b.stop()
  }
}

describe('ACME shared through the store', () => {
  it('two instances on one etcd order the certificate once and both serve it', async () => {
    await orderOnceBothServe(`etcd://${etcd.endpoint}/acme-once`, 'etcd-once.test')
  }, 150_000)

  it('two instances on one ZooKeeper order the certificate once and both serve it', async () => {
    await orderOnceBothServe(`zk://127.0.0.1:${zk.port}/acme-once`, 'zk-once.test')
  }, 150_000)

  it('the instance holding the order killed in the middle: the other takes the lease over and finishes', async () => {
    const host = 'killed.test'
    const [a, b] = await pair(`etcd://${etcd.endpoint}/acme-kill`)
    try {
      // A challenge written to the store means an order is under way (its holder waits a moment before the CA
      // validates). The watch sees it within milliseconds; both instances are frozen then (however loaded the
      // machine, the holder cannot finish in the meantime), the holder (its pid is on the lease) is killed and
      // the other thawed.
      const client = new Etcd3({ hosts: etcd.endpoint })
      const watcher = await client.watch().prefix('/acme-kill/acme-http-01/').create()
      const written = new Promise<void>((resolve) =>
        watcher.on('put', () => {
          a.proc.kill('SIGSTOP')
          b.proc.kill('SIGSTOP')
          resolve()
        }),
      )
      await configure(a, host)
      await within(written, 60_000, 'an order under way')
      const lease = await client.get(`/acme-kill/leases/acme-${host}`).string()
      await watcher.cancel()
      client.close()
      const holder = lease === null ? 0 : (JSON.parse(lease) as { pid: number }).pid
      const victim = [a, b].find((x) => x.proc.pid === holder)
      const survivor = [a, b].find((x) => x.proc.pid !== holder)
      if (victim === undefined || survivor === undefined) throw new Error(`lease held by pid ${holder}, not one of the balancers`)
      victim.proc.kill('SIGKILL')
      survivor.proc.kill('SIGCONT')
      await victim.exited
      await until(async () => (await state(survivor, host)) === 'valid', 120_000, 'the survivor to finish the order')
      // The log line follows the write to the store by a moment.
      await survivor.waitLog((l) => l.msg === 'ACME certificate issued' && l.cert === host)
      expect(issued([victim], host)).toBe(0)
      expect(issued([survivor], host)).toBe(1)
      expect((await curl(host)).out).toBe(`hello ${host}:${tls}`)
    } finally {
      a.proc.kill('SIGCONT')
      b.proc.kill('SIGCONT')
      await a.stop()
      await b.stop()
    }
  }, 180_000)
})
