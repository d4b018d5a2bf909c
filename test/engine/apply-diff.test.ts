// Applying a snapshot compiled by difference (an API write): the engine
// touches only the listeners, upstream records and check pairs the diff
// names, and ends in the state a whole apply gives: traffic follows the
// change, what was removed is retired and no longer probed, what was kept
// keeps its runtime, and a refused apply leaves the serving snapshot whole.

import { createServer } from 'node:net'
import type { Server as NetServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { compile } from '../../src/compiler/compile.ts'
import type { RoutingSnapshot } from '../../src/compiler/snapshot.ts'
import { normalizeServer, parseConfig, parseEdit } from '../../src/model/parse.ts'
import type { Server, ValidConfig } from '../../src/model/types.ts'
import { httpGet } from '../support/client.ts'
import { startEngine } from '../support/engine.ts'
import type { StartedEngine } from '../support/engine.ts'
import { until } from '../support/poll.ts'
import { freePorts } from '../support/services/ports.ts'
import { httpUpstream } from '../support/upstream.ts'
import type { HttpUpstream } from '../support/upstream.ts'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function named(name: string): Promise<HttpUpstream> {
  const up = await httpUpstream(undefined, { name })
  cleanup.push(() => up.close())
  return up
}

async function started(snap: RoutingSnapshot): Promise<StartedEngine> {
  const e = await startEngine(snap)
  cleanup.push(() => e.stop())
  return e
}

const HEALTH = { Type: 'http', Path: '/', Interval: '200ms', Timeout: '200ms', Rise: 1, Fall: 1 }

const serverOn = (port: number, up: HttpUpstream): object => ({ address: `127.0.0.1:${port}`, health: HEALTH, upstreams: [{ Target: '127.0.0.1', Port: up.port }] })

function edit(prev: ValidConfig, f: (servers: Server[]) => Server[]): ValidConfig {
  return parseEdit(prev, { servers: f([...prev.servers]) })
}

const body = async (port: number): Promise<string> => (await httpGet(port, '/')).text

function upstreamKeys(e: StartedEngine): string[] {
  return e.engine
    .stats()
    .upstreams.filter((u) => u.state !== 'draining')
    .map((u) => u.key)
    .sort()
}

describe('apply by difference', () => {
  it('a write that changes one server: its traffic moves, the old upstream is retired and unprobed, the other server keeps its runtime', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(named))
    if (a === undefined || b === undefined || c === undefined) throw new Error('setup')
    const [p1, p2] = await freePorts(2)
    if (p1 === undefined || p2 === undefined) throw new Error('ports')
    const cfg1 = parseConfig([serverOn(p1, a), serverOn(p2, b)])
    const snap1 = compile(cfg1, 1)
    const e = await started(snap1)
    expect(await body(p1)).toBe('a')
    expect(await body(p2)).toBe('b')

    const cfg2 = edit(cfg1, (s) => s.with(0, normalizeServer(serverOn(p1, c), 'servers[0]')))
    const snap2 = compile(cfg2, 2, snap1)
    expect([...(snap2.diff?.listeners ?? [])]).toEqual([`127.0.0.1:${p1}`])
    await e.engine.apply(snap2)
    // c is served once its first check passes (pending until then, as with a whole apply).
    await until(async () => (await body(p1)) === 'c', 5000, 'c served')
    expect(await body(p2)).toBe('b')
    expect(upstreamKeys(e)).toEqual([`127.0.0.1:${b.port}`, `127.0.0.1:${c.port}`].sort())
    // The retired upstream's check stopped: while b is probed three more times, a is not probed.
    const seen = b.requests.length
    await until(() => b.requests.length > seen, 5000, 'a probe of b')
    const probed = a.requests.length
    await until(() => b.requests.length >= seen + 4, 5000, 'three more probes of b')
    expect(a.requests.length).toBe(probed)
    // And a whole apply of the same configuration changes nothing the diff did not.
    await e.engine.apply(compile(cfg2, 3))
    expect(upstreamKeys(e)).toEqual([`127.0.0.1:${b.port}`, `127.0.0.1:${c.port}`].sort())
    expect(await body(p1)).toBe('c')
  })

  it('adds and removes listeners; a refused one leaves the serving snapshot whole, and the next write applies', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map(named))
    if (a === undefined || b === undefined) throw new Error('setup')
    const [p1, p2, p3] = await freePorts(3)
    if (p1 === undefined || p2 === undefined || p3 === undefined) throw new Error('ports')
    const cfg1 = parseConfig([serverOn(p1, a)])
    const snap1 = compile(cfg1, 1)
    const e = await started(snap1)

    // Another process holds p3: the apply adding it is refused.
    const holder: NetServer = createServer()
    await new Promise<void>((r) => holder.listen(p3, '127.0.0.1', () => r()))
    cleanup.push(() => new Promise<void>((r) => holder.close(() => r())))
    const refusedCfg = edit(cfg1, (s) => [...s, normalizeServer(serverOn(p3, b), 'servers[1]')])
    const refused = compile(refusedCfg, 2, snap1)
    await expect(e.engine.apply(refused)).rejects.toMatchObject({ code: 'E_LISTEN' })
    expect(await body(p1)).toBe('a')
    expect(upstreamKeys(e)).toEqual([`127.0.0.1:${a.port}`])

    // The next write is compiled from the refused snapshot: not the serving one's diff, so applied whole.
    const cfg2 = edit(cfg1, (s) => [...s, normalizeServer(serverOn(p2, b), 'servers[1]')])
    const snap2 = compile(cfg2, 3, refused)
    await e.engine.apply(snap2)
    expect(await body(p2)).toBe('b')

    // Then by difference: the first server goes, its listener drains and its upstream is retired.
    const cfg3 = edit(cfg2, (s) => s.slice(1))
    const snap3 = compile(cfg3, 4, snap2)
    expect(snap3.diff?.base).toBe(snap2)
    await e.engine.apply(snap3)
    expect(e.engine.boundPort(`127.0.0.1:${p1}`)).toBeNull()
    expect(upstreamKeys(e)).toEqual([`127.0.0.1:${b.port}`])
    expect(await body(p2)).toBe('b')
  })
})
