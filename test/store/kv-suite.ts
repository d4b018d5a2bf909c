// The behaviour every KV store (etcd, ZooKeeper, Consul) must show, run by
// each backend's test file against a real server (etcd, ZooKeeper) or the
// Consul stand-in, which the file starts in its own beforeAll. Every test
// works under its own prefix.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { configHash } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import type { Config, Server, ValidConfig } from '../../src/model/types.ts'
import type { KvStoreOptions } from '../../src/store/kv/options.ts'
import type { ConfigStore, StoreState } from '../../src/store/store.ts'
import { serverValue } from '../../src/store/kv/layout.ts'
import { edit } from '../support/edit.ts'
import { until } from '../support/poll.ts'

export type KvTestStore = ConfigStore & { health(): { state: string; since: number; detail: string | null } }

export interface KvHarness {
  name: string
  /** A store on prefix (`/t3`), with the suite's short timings merged over opts. */
  open(prefix: string, opts: Partial<KvStoreOptions>): KvTestStore
  /** Writes a server's key directly in the store, the way a person would (not through a store instance). */
  put(prefix: string, address: string, value: string): Promise<void>
  /** The same, blocking the event loop until the write is done (lands between a store's read and write). */
  putSync(prefix: string, address: string, value: string): void
  /** Every server key under the prefix: address -> raw value. */
  dump(prefix: string): Promise<Map<string, string>>
  stop(): Promise<void>
  start(): Promise<void>
  freeze(): void
  resume(): void
}

/** Short timings so outages are seen in well under a second. */
export const TEST_TIMING: Partial<KvStoreOptions> = {
  timeoutMs: 1000,
  timing: { debounceMs: 50, maxDebounceMs: 500, probeMs: 300, backoffMinMs: 50, backoffMaxMs: 300 },
}

type Event = { kind: 'change'; state: StoreState; at: number } | { kind: 'error'; err: Error; at: number }

export class Recorder {
  readonly events: Event[] = []
  readonly handlers = {
    onChange: (state: StoreState) => this.events.push({ kind: 'change', state, at: Date.now() }),
    onError: (err: Error) => this.events.push({ kind: 'error', err, at: Date.now() }),
  }
  changes(): StoreState[] {
    return this.events.flatMap((e) => (e.kind === 'change' ? [e.state] : []))
  }
  errors(): Error[] {
    return this.events.flatMap((e) => (e.kind === 'error' ? [e.err] : []))
  }
  last(): StoreState | undefined {
    return this.changes().at(-1)
  }
}

export function server(port: number, weight = 1): Server {
  return {
    address: `:${port}`,
    filter: { Hosts: [], Schemes: [], PathPrefix: '' },
    upstreams: [{ Target: '127.0.0.1', Port: 9000, Priority: 1, Weight: weight }],
    fallbacks: [],
    routes: [],
  }
}

export const withServer = (s: Server) =>
  edit(
    (cfg: Config): Config => ({
      servers: [...cfg.servers.filter((x) => x.address !== s.address), s],
    }),
  )

const addresses = (s: StoreState | undefined): string[] => (s?.config.servers ?? []).map((x) => x.address)

export function kvSuite(h: KvHarness): void {
  let n = 0
  let prefix = ''
  const stores: KvTestStore[] = []
  const aborts: AbortController[] = []

  const open = (opts: Partial<KvStoreOptions> = {}): KvTestStore => {
    const s = h.open(prefix, { ...TEST_TIMING, ...opts })
    stores.push(s)
    return s
  }
  const watch = (s: KvTestStore): Recorder => {
    const rec = new Recorder()
    const ac = new AbortController()
    aborts.push(ac)
    s.watch(ac.signal, rec.handlers)
    return rec
  }

  describe(`${h.name} store`, () => {
    beforeEach(() => {
      prefix = `/t${++n}`
    })
    afterEach(async () => {
      for (const a of aborts.splice(0)) a.abort()
      await Promise.all(stores.splice(0).map((s) => s.close()))
    })

    it('round-trips load/update through the documented key layout', async () => {
      const a = open()
      expect((await a.load()).config).toEqual({ servers: [] })
      const written = await a.update(withServer(server(8080, 3)))
      const raw = await h.dump(prefix)
      expect([...raw.keys()]).toEqual([':8080'])
      expect(raw.get(':8080')).toBe(serverValue(server(8080, 3)))
      const b = open()
      const loaded = await b.load()
      expect(loaded.config).toEqual(written.config)
      expect(loaded.revision.endsWith(`-${configHash(loaded.config)}`)).toBe(true)
      expect(b.health().state).toBe('connected')
    })

    it("hears its own and another instance's writes through watch", async () => {
      const a = open()
      const b = open()
      await b.load()
      const rec = watch(b)
      const t0 = Date.now()
      await a.update(withServer(server(8081)))
      await until(() => addresses(rec.last()).includes(':8081'), 1000, "the other instance's write")
      console.log(`[${h.name}] write through A -> watch on B: ${Date.now() - t0} ms`)
      expect(rec.errors()).toEqual([])
    })

    it('a change written directly in the store reaches watch within a second', async () => {
      const a = open()
      await a.update(withServer(server(8082)))
      const rec = watch(a)
      // No wait for the watch to start: its first read sees the edit whether it lands before or after.
      const t0 = Date.now()
      await h.put(prefix, ':8083', '// by hand, address from the key\n{"upstreams": [{"Target": "10.0.0.1", "Port": 80}]}')
      await until(() => addresses(rec.last()).includes(':8083'), 1000, 'the hand edit')
      console.log(`[${h.name}] direct write -> watch: ${Date.now() - t0} ms`)
      expect(rec.last()?.config.servers.find((s) => s.address === ':8083')?.upstreams[0]?.Target).toBe('10.0.0.1')
    })

    it('sees nested edits and a tree that starts empty', async () => {
      const a = open()
      const rec = watch(a)
      await until(() => rec.changes().length === 1, 1000, 'the first read')
      const s = {
        ...server(8084),
        routes: [{ name: 'api', filter: { Hosts: ['api.example'], Schemes: [], PathPrefix: '' }, upstreams: [{ Target: '127.0.0.1', Port: 9001, Priority: 1, Weight: 1 }], fallbacks: [] }],
      }
      await h.put(prefix, ':8084', serverValue(s))
      await until(() => addresses(rec.last()).includes(':8084'), 1000, 'the first key under an empty prefix')
      const edited = { ...s, routes: [{ ...s.routes[0]!, upstreams: [{ Target: '127.0.0.1', Port: 9001, Priority: 1, Weight: 7 }] }] }
      await h.put(prefix, ':8084', serverValue(edited))
      await until(() => rec.last()?.config.servers[0]?.routes[0]?.upstreams[0]?.Weight === 7, 1000, 'the nested edit')
    })

    it('coalesces a burst of 50 writes into a few reloads with the final content', async () => {
      const a = open()
      await a.load()
      const rec = watch(a)
      await Promise.all(Array.from({ length: 50 }, (_, i) => h.put(prefix, `:${9100 + i}`, serverValue(server(9100 + i)))))
      await until(() => rec.last()?.config.servers.length === 50, 3000, 'all 50 servers')
      // Asserts that nothing more arrives: only a stretch of time can show it (six debounce periods).
      await new Promise((r) => setTimeout(r, 300))
      console.log(`[${h.name}] 50 writes -> ${rec.changes().length} onChange`)
      expect(rec.changes().length).toBeLessThanOrEqual(8)
      expect(rec.last()?.config.servers.length).toBe(50)
    })

    it('never loses a concurrent write, and retries the whole mutation on a conflict', async () => {
      const a = open()
      const b = open()
      await a.update(withServer(server(8085)))
      const addUpstream =
        (port: number) =>
        (cfg: ValidConfig): ValidConfig => {
          const s = cfg.servers.find((x) => x.address === ':8085') as Server
          return withServer({ ...s, upstreams: [...s.upstreams, { Target: '127.0.0.1', Port: port, Priority: 1, Weight: 1 }] })(cfg)
        }
      // Another writer changes the same server between B's read and B's write:
      // B's check-and-set fails and its mutation runs again on that writer's result.
      let calls = 0
      const result = await b.update((cfg) => {
        calls++
        if (calls === 1) h.putSync(prefix, ':8085', serverValue(server(8085, 5)))
        return addUpstream(7777)(cfg)
      })
      expect(calls).toBe(2)
      expect(result.config.servers[0]?.upstreams.map((u) => [u.Port, u.Weight])).toEqual([
        [9000, 5],
        [7777, 1],
      ])
      // Many writers through two instances, all on one server: nothing is lost.
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).update(addUpstream(7000 + i))))
      const final = await open().load()
      const ports = final.config.servers.find((s) => s.address === ':8085')?.upstreams.map((u) => u.Port)
      expect(ports?.sort((x, y) => (x ?? 0) - (y ?? 0))).toEqual([...Array.from({ length: 10 }, (_, i) => 7000 + i), 7777, 9000])
    })

    it('refuses a stale If-Match-like check: exactly one of two concurrent writers wins', async () => {
      const a = open()
      const b = open()
      const base = await a.update(withServer(server(8088)))
      const tag = configHash(base.config.servers[0])
      const guarded =
        (weight: number) =>
        (cfg: ValidConfig): ValidConfig => {
          const cur = cfg.servers.find((s) => s.address === ':8088')
          if (configHash(cur) !== tag) throw new BalancerError('E_PRECONDITION', 'If-Match does not match')
          return withServer(server(8088, weight))(cfg)
        }
      const results = await Promise.allSettled([a.update(guarded(2)), b.update(guarded(3))])
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      const lost = results.find((r) => r.status === 'rejected')
      expect((lost as PromiseRejectedResult).reason).toMatchObject({ code: 'E_PRECONDITION' })
    })

    it('refuses a bad key as a whole, names it, and recovers when it is fixed', async () => {
      const a = open()
      await a.update(withServer(server(8089)))
      const rec = watch(a)
      await h.put(prefix, ':8090', '{"upstreams": [{"Target": "x", "Port": "http"}]}')
      await until(() => rec.errors().length === 1, 1000, 'the bad key reported')
      const err = rec.errors()[0] as BalancerError
      expect(err.code).toBe('E_VALIDATION')
      expect(err.problems[0]?.path).toMatch(/servers\/%3A8090\.upstreams\[0\]\.Port$/)
      await expect(open().load()).rejects.toMatchObject({ code: 'E_VALIDATION' })
      await expect(a.update(withServer(server(8091)))).rejects.toMatchObject({ code: 'E_VALIDATION' })
      await h.put(prefix, ':8092', '{"address": ":9999", "upstreams": []}')
      // Asserts that the bad key is never applied: only a stretch of time (four debounce periods) can show it.
      await new Promise((r) => setTimeout(r, 200))
      expect(rec.changes().every((s) => s.config.servers.length > 0)).toBe(true)
      await h.put(prefix, ':8090', serverValue(server(8090)))
      await h.put(prefix, ':8092', '{"upstreams": []}')
      await until(() => addresses(rec.last()).join() === ':8089,:8090,:8092', 1000, 'the fixed keys')
    })

    it('refuses a value that would inject into a request head (CR LF in a health Path, U+010A in a PathPrefix), naming the field', async () => {
      const a = open()
      await a.update(withServer(server(8093)))
      const rec = watch(a)
      await h.put(prefix, ':8094', '{"health": {"Path": "/h\\r\\nX-Injected: 1"}, "filter": {"PathPrefix": "/\\u010d\\u010a"}}')
      await until(() => rec.errors().length === 1, 1000, 'the injecting key reported')
      const err = rec.errors()[0] as BalancerError
      expect(err.code).toBe('E_VALIDATION')
      expect(err.problems.map((p) => p.path.replace(/^.*servers\/%3A8094\./, ''))).toEqual(['filter.PathPrefix', 'health.Path'])
      expect(err.problems.map((p) => p.message.split(':')[0])).toEqual(['must be visible ASCII only', 'must be visible ASCII only'])
      await expect(open().load()).rejects.toMatchObject({ code: 'E_VALIDATION' })
      await h.put(prefix, ':8094', '{"upstreams": []}')
      await until(() => addresses(rec.last()).join() === ':8093,:8094', 1000, 'the fixed key')
    })

    it('survives the store stopping and restarting: one error, never an empty config, resync after', async () => {
      const a = open()
      await a.update(withServer(server(8093)))
      const rec = watch(a)
      await until(() => a.health().state === 'connected', 1000, 'connected')
      const t0 = Date.now()
      await h.stop()
      await until(() => rec.errors().length > 0, 3000, 'the outage reported')
      console.log(`[${h.name}] stop -> onError: ${Date.now() - t0} ms`)
      expect(a.health().state).toBe('unreachable')
      expect(rec.errors()[0]).toMatchObject({ code: 'E_STORE_UNAVAILABLE' })
      // Asserts that one outage is reported once: only a stretch of time (several retries) can show it.
      await new Promise((r) => setTimeout(r, 700))
      expect(rec.errors()).toHaveLength(1)
      await expect(a.update(withServer(server(8094)))).rejects.toMatchObject({ code: 'E_STORE_UNAVAILABLE' })
      const t1 = Date.now()
      await h.start()
      await until(() => a.health().state === 'connected', 5000, 'reconnected')
      console.log(`[${h.name}] back -> health connected: ${Date.now() - t1} ms`)
      await h.put(prefix, ':8095', serverValue(server(8095)))
      await until(() => addresses(rec.last()).includes(':8095'), 3000, 'a write made after the restart')
      expect(rec.changes().every((s) => s.config.servers.length > 0)).toBe(true)
      expect(addresses(rec.last())).toEqual([':8093', ':8095'])
    })

    it('a frozen store makes update() fail in bounded time with nothing half-written', async () => {
      const a = open()
      await a.update(withServer(server(8096)))
      h.freeze()
      const t0 = Date.now()
      try {
        const err = await a.update((cfg) => withServer(server(8098))(withServer(server(8097))(cfg))).catch((e: unknown) => e)
        const took = Date.now() - t0
        console.log(`[${h.name}] frozen -> update rejected after ${took} ms`)
        expect(err).toMatchObject({ code: 'E_STORE_UNAVAILABLE' })
        expect(took).toBeLessThan(2500)
      } finally {
        h.resume()
      }
      await until(async () => (await h.dump(prefix).catch(() => null)) !== null, 5000, 'the store answering again')
      const keys = [...(await h.dump(prefix)).keys()]
      expect([[':8096'], [':8096', ':8097', ':8098']]).toContainEqual(keys)
    })
  })
}
