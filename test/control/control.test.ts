// The control plane's owner of desired state: how changes from the API, the
// store and discovery are coalesced and ordered, what a refusal leaves, and
// what subscribers hear. Real file store in a temporary directory; the apply
// target records what it is given and can be held, to make bursts happen
// while an apply is in progress. The same path with a real engine and real
// traffic is in reload-traffic.test.ts.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Control } from '../../src/control/control.ts'
import type { ControlEvent } from '../../src/control/events.ts'
import type { ApplyTarget } from '../../src/control/reloader.ts'
import { BalancerError, ErrorCode } from '../../src/model/errors.ts'
import type { Config, Server, ValidConfig } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import { until } from '../support/poll.ts'

function server(port: number, upstreams: number[] = []): Server {
  return {
    address: `127.0.0.1:${port}`,
    filter: { Hosts: [], Schemes: [], PathPrefix: '' },
    upstreams: upstreams.map((p) => ({ Target: '10.0.0.1', Port: p, Priority: 1, Weight: 1 })),
    fallbacks: [],
    routes: [],
  }
}

const addServer =
  (port: number) =>
  (cfg: ValidConfig): Config => ({ servers: [...cfg.servers, server(port)] })
const addresses = (cfg: Config): string[] => cfg.servers.map((s) => s.address)

/** Records every apply; while held, applies wait until released (a slow engine, a worker group mid-apply). */
class Target implements ApplyTarget {
  readonly applied: Array<{ version: number; addresses: string[] }> = []
  #held: Promise<void> | null = null
  #release: (() => void) | null = null
  refuse: BalancerError | null = null
  started = 0

  hold(): void {
    this.#held = new Promise((r) => (this.#release = r))
  }

  release(): void {
    this.#release?.()
    this.#held = null
  }

  async apply(config: ValidConfig, version: number): Promise<void> {
    this.started++
    if (this.#held !== null) await this.#held
    if (this.refuse !== null) throw this.refuse
    this.applied.push({ version, addresses: addresses(config) })
  }
}

let dir: string
let file: string
let target: Target
let control: Control
let events: ControlEvent[]

async function open(text?: string): Promise<Control> {
  if (text !== undefined) writeFileSync(file, text)
  const store = new FileStore(file, { pollMs: 50, debounceMs: 10 })
  const c = new Control({ store, initial: await store.load(), target })
  c.subscribe((e) => events.push(e))
  return c
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'balancer-control-'))
  file = join(dir, 'balancer.json')
  target = new Target()
  events = []
  control = await open()
  await control.start()
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe('coalescing', () => {
  it('a burst while an apply runs is one more apply, of the newest state; every writer is answered by it', async () => {
    target.hold()
    const first = control.write(addServer(8001))
    await until(() => target.started === 2, 1000, 'the first write to reach the target')
    // Five writes and two discovery publishes arrive while the first is being applied.
    const burst = [8002, 8003, 8004, 8005, 8006].map((p) => control.write(addServer(p)))
    await until(() => addresses(control.stored().config).length === 6, 2000, 'the burst to be stored')
    const found = [control.discovered('docker', [server(9001)], ['web-1']), control.discovered('docker', [server(9001), server(9002)], ['web-1', 'web-2'])]
    target.release()
    const results = await Promise.all([first, ...burst])
    await Promise.all(found)
    // The start, the first write, then everything else at once.
    expect(target.applied.map((a) => a.version)).toEqual([1, 2, 3])
    expect(target.applied[2]?.addresses).toEqual(['127.0.0.1:8001', '127.0.0.1:8002', '127.0.0.1:8003', '127.0.0.1:8004', '127.0.0.1:8005', '127.0.0.1:8006', '127.0.0.1:9001', '127.0.0.1:9002'])
    for (const r of results.slice(1)) expect(r.outcome).toMatchObject({ version: 3, error: null, causes: ['api', 'discovery'] })
    expect(results[0]?.outcome?.version).toBe(2)
    expect(events.map((e) => `${e.type} v${e.version} ${e.causes.join('+')}`)).toEqual(['applied v1 start', 'applied v2 api', 'applied v3 api+discovery'])
  })

  it('a discovery source publishing the same set again changes nothing', async () => {
    await control.discovered('docker', [server(9001)], ['web-1'])
    expect(control.discovered('docker', [server(9001)], ['web-1'])).toBeUndefined()
    expect(target.applied).toHaveLength(2)
    // The same servers from another container name are a change (the API shows the name).
    await control.discovered('docker', [server(9001)], ['web-2'])
    expect(target.applied).toHaveLength(3)
  })

  it('a write that changes nothing applies nothing and is not an event', async () => {
    await control.write(addServer(8001))
    const again = await control.write((cfg) => cfg)
    expect(again).toMatchObject({ changed: false, outcome: null })
    expect(target.applied).toHaveLength(2)
    expect(events).toHaveLength(2)
  })
})

describe('ordering', () => {
  it('never applies a state older than one already applied, and each apply holds every change submitted before it', async () => {
    for (let i = 0; i < 3; i++) await control.write(addServer(8100 + i))
    // API writes and discovery publishes interleaved while an apply is held.
    target.hold()
    const work: Array<Promise<unknown> | undefined> = [control.write(addServer(8103))]
    await until(() => target.started === 5, 1000, 'the held apply to start')
    for (let i = 4; i < 12; i++) {
      work.push(control.write(addServer(8100 + i)))
      if (i % 3 === 0)
        work.push(
          control.discovered(
            'swarm',
            Array.from({ length: i }, (_, k) => server(9100 + k)),
          ),
        )
    }
    await until(() => addresses(control.stored().config).length === 12, 2000, 'every write to be stored')
    target.release()
    await Promise.all(work)
    await control.settled()
    const versions = target.applied.map((a) => a.version)
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
    for (let k = 1; k < target.applied.length; k++) {
      const before = new Set(target.applied[k - 1]?.addresses)
      const now = new Set(target.applied[k]?.addresses)
      // Servers only arrive in this run, so each apply contains everything the previous one had.
      expect([...before].filter((a) => !now.has(a))).toEqual([])
    }
    const last = target.applied.at(-1)?.addresses ?? []
    expect(last.filter((a) => a.startsWith('127.0.0.1:81'))).toHaveLength(12)
    expect(last.filter((a) => a.startsWith('127.0.0.1:91'))).toHaveLength(9)
    // Everything that arrived during the held apply was one more apply.
    expect(target.applied.length).toBe(6)
  })

  it('the store reporting our own write back is not a second apply; a hand edit is', async () => {
    const r = await control.write(addServer(8001))
    // What the watcher reports after the write: the state the write produced.
    expect(control.storeChanged(r.state)).toBeUndefined()
    expect(target.applied.map((a) => a.version)).toEqual([1, 2])
    const ac = new AbortController()
    control.follow(ac.signal)
    try {
      writeFileSync(file, JSON.stringify({ servers: [server(8001), server(8002)] }))
      await until(() => target.applied.length === 3, 3000, 'the hand edit to be applied')
      expect(target.applied[2]?.addresses).toEqual(['127.0.0.1:8001', '127.0.0.1:8002'])
      expect(events.at(-1)).toMatchObject({ type: 'applied', causes: ['store'] })
    } finally {
      ac.abort()
    }
  })
})

describe('refusals', () => {
  it('a change the target refuses is a refused event and lastError; the last good version keeps serving; the next good one clears it', async () => {
    target.refuse = new BalancerError(ErrorCode.Listen, 'cannot listen on 127.0.0.1:8001: EADDRINUSE')
    const r = await control.write(addServer(8001))
    expect(r.changed).toBe(true)
    expect(r.outcome?.error).toBe(target.refuse)
    expect(control.applied().version).toBe(1)
    expect(control.lastError()).toMatchObject({ code: 'E_LISTEN', message: expect.stringContaining('EADDRINUSE') })
    expect(events.at(-1)).toMatchObject({ type: 'refused', version: 1, causes: ['api'], error: { code: 'E_LISTEN' } })
    // The refused change is stored (the store is the truth); the next apply retries it with the next change.
    target.refuse = null
    await control.write(addServer(8002))
    expect(control.lastError()).toBeNull()
    expect(target.applied.at(-1)).toEqual({ version: 2, addresses: ['127.0.0.1:8001', '127.0.0.1:8002'] })
  })

  it('invalid content in the store is refused with its problems; the last good config keeps serving until it is fixed', async () => {
    const ac = new AbortController()
    await control.write(addServer(8001))
    control.follow(ac.signal)
    try {
      writeFileSync(file, '{"servers": [{"address": ":80", "upstreams": [{"Target": "a", "Port": "http"}]}]}')
      await until(() => control.lastError() !== null, 3000, 'the bad edit to be refused')
      expect(control.lastError()).toMatchObject({ code: 'E_VALIDATION', problems: [{ path: 'servers[0].upstreams[0].Port' }] })
      expect(events.at(-1)).toMatchObject({ type: 'refused', revision: null, causes: ['store'] })
      expect(control.served().config.servers.map((s) => s.address)).toEqual(['127.0.0.1:8001'])
      writeFileSync(file, JSON.stringify({ servers: [server(8003)] }))
      await until(() => control.lastError() === null, 3000, 'the fixed edit to be applied')
      expect(target.applied.at(-1)?.addresses).toEqual(['127.0.0.1:8003'])
    } finally {
      ac.abort()
    }
  })

  it('an edit the parser refuses rejects the write, and nothing is stored, applied or told', async () => {
    await control.write(addServer(8001))
    const before = control.stored()
    await expect(control.write(addServer(8001))).rejects.toMatchObject({ code: 'E_CONFLICT' })
    await expect(control.write((cfg) => ({ servers: [...cfg.servers, { ...server(8002), upstreams: [{ Target: '', Port: 0, Priority: 1, Weight: 1 }] }] }))).rejects.toMatchObject({
      code: 'E_VALIDATION',
      problems: [{ path: 'servers[1].upstreams[0].Target' }, { path: 'servers[1].upstreams[0].Port' }],
    })
    expect(control.stored()).toBe(before)
    expect(target.applied).toHaveLength(2)
    expect(events).toHaveLength(2)
  })
})

describe('write options', () => {
  it('dryRun checks the write and returns what would be stored, writing and applying nothing', async () => {
    const r = await control.write(addServer(8001), { dryRun: true })
    expect(r.changed).toBe(false)
    expect(addresses(r.stored)).toEqual(['127.0.0.1:8001'])
    expect(addresses(control.stored().config)).toEqual([])
    expect(target.applied).toHaveLength(1)
    const reopened = await open()
    expect(addresses(reopened.stored().config)).toEqual([])
  })

  it('a check hook sees the candidate and what would be served, and refusing in it writes nothing', async () => {
    await control.discovered('docker', [server(9001)], ['web-1'])
    const seen: string[][] = []
    const refuse = new BalancerError(ErrorCode.Conflict, 'refused by the check')
    await expect(
      control.write(addServer(8001), {
        check: (c) => {
          seen.push(addresses(c.stored), addresses(c.served().config))
          throw refuse
        },
      }),
    ).rejects.toBe(refuse)
    expect(seen).toEqual([['127.0.0.1:8001'], ['127.0.0.1:8001', '127.0.0.1:9001']])
    expect(addresses(control.stored().config)).toEqual([])
  })
})

describe('subscribers', () => {
  it('one that throws does not keep the others from hearing, and is reported', async () => {
    const reported: unknown[] = []
    const store = new FileStore(file)
    const c = new Control({ store, initial: await store.load(), target, onListenerError: (err) => reported.push(err) })
    const heard: string[] = []
    c.subscribe(() => {
      throw new Error('broken subscriber')
    })
    const off = c.subscribe((e) => heard.push(e.type))
    await c.start()
    await c.write(addServer(8001))
    off()
    await c.write(addServer(8002))
    expect(heard).toEqual(['applied', 'applied'])
    expect(reported).toHaveLength(3)
  })
})
