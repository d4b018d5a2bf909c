// compile() from a base snapshot: what an API write costs at scale. The
// snapshot compiled by difference must be the one a whole compile gives, and
// its diff must name exactly what changed, so the engine can touch only that.

import { describe, expect, it } from 'vitest'
import { compile } from '../../src/compiler/compile.ts'
import type { RoutingSnapshot } from '../../src/compiler/snapshot.ts'
import { normalizeServer, parseConfig, parseEdit } from '../../src/model/parse.ts'
import type { Server, ValidConfig } from '../../src/model/types.ts'

const server = (raw: object): Server => normalizeServer(raw, 'servers[0]')

const plain = (i: number, extra: object = {}): object => ({
  address: `127.0.0.1:${9000 + i}`,
  upstreams: [{ Target: `10.0.0.${i}`, Port: 80 }],
  routes: [{ name: 'api', filter: { Hosts: [`api${i}.example.com`] }, upstreams: [{ Target: 'shared.internal', Port: 8080 }] }],
  ...extra,
})

/** A TLS server and a plain one whose https-only route redirects to it: redirects cross servers. */
const start = (): ValidConfig =>
  parseConfig([
    plain(1),
    plain(2, { filter: { Hosts: ['secure.example.com'], Schemes: ['https'] } }),
    { address: '127.0.0.1:8443', tls: { Certificates: [{ CertFile: '/c.pem', KeyFile: '/k.pem' }] }, filter: { Hosts: ['secure.example.com'] }, upstreams: [{ Target: '10.0.1.1', Port: 80 }] },
    plain(3),
  ])

function edit(prev: ValidConfig, f: (servers: Server[]) => Server[]): ValidConfig {
  return parseEdit(prev, { servers: f([...prev.servers]) })
}

/** compile from base gives what a whole compile gives; returns the snapshot compiled by difference. */
function sameAsWhole(next: ValidConfig, base: RoutingSnapshot): RoutingSnapshot {
  const diffed = compile(next, base.version + 1, base)
  const whole = compile(next, base.version + 1)
  expect(new Map([...diffed.listeners].sort())).toEqual(new Map([...whole.listeners].sort()))
  expect(new Map([...diffed.targets].sort())).toEqual(new Map([...whole.targets].sort()))
  return diffed
}

describe('compile by difference', () => {
  it('a changed server: its listener and its targets only, every other plan the same object', () => {
    const a = start()
    const base = compile(a, 1)
    const b = edit(a, (s) => s.with(0, server(plain(1, { upstreams: [{ Target: '10.0.0.9', Port: 80 }] }))))
    const snap = sameAsWhole(b, base)
    expect(snap.diff?.base).toBe(base)
    expect([...(snap.diff?.listeners ?? [])]).toEqual(['127.0.0.1:9001'])
    expect([...(snap.diff?.addedTargets.keys() ?? [])]).toEqual(['10.0.0.9:80'])
    expect(snap.diff?.removedTargets).toEqual(['10.0.0.1:80'])
    for (const key of ['127.0.0.1:9002', '127.0.0.1:8443', '127.0.0.1:9003']) expect(snap.listeners.get(key)).toBe(base.listeners.get(key))
  })

  it('a target still referenced by another server is neither added nor removed', () => {
    const a = start()
    const base = compile(a, 1)
    const b = edit(a, (s) => s.filter((_, i) => i !== 0))
    const snap = sameAsWhole(b, base)
    expect([...(snap.diff?.listeners ?? [])]).toEqual(['127.0.0.1:9001'])
    expect(snap.diff?.removedTargets).toEqual(['10.0.0.1:80'])
    expect(snap.targets.has('shared.internal:8080')).toBe(true)
  })

  it('a target whose protocol changes is in addedTargets', () => {
    const a = parseConfig([plain(1)])
    const base = compile(a, 1)
    const b = edit(a, (s) => s.with(0, server(plain(1, { upstreams: [{ Target: '10.0.0.1', Port: 80, Protocol: 'h2c' }] }))))
    const snap = sameAsWhole(b, base)
    expect(snap.diff?.addedTargets.get('10.0.0.1:80')?.protocol).toBe('h2c')
    expect(snap.diff?.removedTargets).toEqual([])
  })

  it('a TLS server that goes away changes the redirects of the servers pointing to it', () => {
    const a = start()
    const base = compile(a, 1)
    const redirect = (snap: RoutingSnapshot) => snap.listeners.get('127.0.0.1:9002')?.routes.find((r) => r.name === 'default')?.httpsPort
    expect(redirect(base)).toBe(8443)
    const b = edit(a, (s) => s.filter((_, i) => i !== 2))
    const snap = sameAsWhole(b, base)
    expect(redirect(snap)).toBe(443)
    expect([...(snap.diff?.listeners ?? [])].sort()).toEqual(['127.0.0.1:8443', '127.0.0.1:9002'])
  })

  it('a chain of writes, each compiled from the last, stays the whole compile; a base used twice compiles whole', () => {
    let cfg = start()
    let snap = compile(cfg, 1)
    for (let i = 4; i < 12; i++) {
      const next = edit(cfg, (s) => (i % 3 === 0 ? s.slice(1) : [...s, server(plain(i))]))
      snap = sameAsWhole(next, snap)
      cfg = next
    }
    const again = compile(cfg, 99, snap.diff?.base)
    expect(again.diff).toBeUndefined()
  })

  it('refuses a clash with a server it did not compile again, and the next compile from that base is whole', () => {
    const a = start()
    const base = compile(a, 1)
    const clash = { servers: [...a.servers, server({ address: '127.0.0.1:9001' })] } as unknown as ValidConfig
    expect(() => compile(clash, 2, base)).toThrow(/127\.0\.0\.1:9001 is used twice/)
    expect(compile(a, 3, base).diff).toBeUndefined()
  })
})
