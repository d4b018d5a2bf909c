// Client address headers cannot be spoofed: from a client that is not a
// trusted proxy, X-Forwarded-For, X-Real-IP and Forwarded are replaced by what
// the balancer saw; from a --trusted-proxies address they are kept and
// appended to.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { forNode } from '../../src/engine/http1/forward.ts'
import { RawClient } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { snapshotFor } from '../support/snapshot.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

let up: HttpUpstream
let edge: StartedEngine
let behind: StartedEngine
let other: StartedEngine

const SPOOF = 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n'

beforeAll(async () => {
  up = await httpUpstream(undefined, { name: 'A' })
  const snap = () => snapshotFor({ routes: [{ hosts: [], upstreams: [{ host: '127.0.0.1', port: up.port }] }] }, 1)
  edge = await startEngine(snap())
  behind = await startEngine(snap(), { trustedProxies: ['10.0.0.0/8', '127.0.0.0/8', '::1'] })
  other = await startEngine(snap(), { trustedProxies: ['10.0.0.0/8', '2001:db8::/32'] })
})
afterAll(async () => {
  for (const e of [edge, behind, other]) await e?.stop()
  await up?.close()
})

async function through(eng: StartedEngine, path: string, extra: string, host = 'shop.example.com:8080'): Promise<Record<string, string | string[] | undefined>> {
  const conn = await RawClient.connect(eng.port)
  conn.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`)
  const res = await conn.read().finally(() => conn.destroy())
  expect(res.body.toString()).toBe('A')
  return up.requests.find((q) => q.url === path)?.headers ?? {}
}

describe('forwarding headers', () => {
  it('from an untrusted client, spoofed X-Forwarded-For, X-Real-IP and Forwarded never reach the upstream', async () => {
    for (const [eng, path] of [
      [edge, '/edge'],
      [other, '/other'],
    ] as const) {
      const h = await through(eng, path, SPOOF)
      expect(h['x-forwarded-for']).toBe('127.0.0.1')
      expect(h['x-real-ip']).toBe('127.0.0.1')
      expect(h['forwarded']).toBe('for=127.0.0.1;proto=http;host="shop.example.com:8080"')
      expect(h['x-forwarded-proto']).toBe('http')
      expect(JSON.stringify(h)).not.toContain('6.6.6.6')
    }
  })

  it('a client that sends several of them, in any letter case, still gets exactly one of each', async () => {
    const h = await through(edge, '/many', 'x-forwarded-for: 1.1.1.1\r\nX-FORWARDED-FOR: 2.2.2.2\r\nforwarded: for=1.1.1.1\r\nFORWARDED: for=2.2.2.2\r\nx-real-ip: 3.3.3.3\r\n')
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
    expect(h['x-real-ip']).toBe('127.0.0.1')
    expect(h['forwarded']).toBe('for=127.0.0.1;proto=http;host="shop.example.com:8080"')
  })

  it('from a --trusted-proxies address they are kept and appended to', async () => {
    const h = await through(behind, '/behind', SPOOF)
    expect(h['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1')
    expect(h['x-real-ip']).toBe('6.6.6.6')
    expect(h['forwarded']).toBe('for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host="shop.example.com:8080"')
    const none = await through(behind, '/behind-none', '')
    expect([none['x-forwarded-for'], none['x-real-ip'], none['forwarded']]).toEqual(['127.0.0.1', '127.0.0.1', 'for=127.0.0.1;proto=http;host="shop.example.com:8080"'])
  })

  it('RFC 7239 nodes: IPv4 bare, IPv6 bracketed and quoted', () => {
    expect(forNode('192.0.2.60')).toBe('for=192.0.2.60')
    expect(forNode('2001:db8:cafe::17')).toBe('for="[2001:db8:cafe::17]"')
  })
})
