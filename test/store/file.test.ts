// FileStore against real files in a temp directory: durability, hand edits
// (in place and save-by-rename), invalid edits, serialised concurrent updates.

import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { configHash, serializeConfig } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import type { Config } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import type { StoreState } from '../../src/store/store.ts'
import { edit } from '../support/edit.ts'

type WatchEvent = { kind: 'change'; state: StoreState } | { kind: 'error'; err: Error }

/** Collects watch events and hands them out in order, waiting for the next one when needed. */
class Recorder {
  readonly events: WatchEvent[] = []
  #read = 0
  #wake: (() => void) | null = null
  readonly handlers = {
    onChange: (state: StoreState) => this.#push({ kind: 'change', state }),
    onError: (err: Error) => this.#push({ kind: 'error', err }),
  }
  #push(e: WatchEvent): void {
    this.events.push(e)
    this.#wake?.()
  }
  // A bound for a loaded machine, not a speed claim: events arrive within a poll period or two.
  async next(timeoutMs = 10_000): Promise<WatchEvent> {
    const deadline = Date.now() + timeoutMs
    while (this.#read >= this.events.length) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no watch event within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.#wake = null
    }
    return this.events[this.#read++] as WatchEvent
  }
}

const server = (port: number, target = '127.0.0.1') => ({ address: `:${port}`, upstreams: [{ Target: target, Port: 9000 + (port % 1000) }] }) as const

let dir: string
let file: string
const aborts: AbortController[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'balancer-file-'))
  file = join(dir, 'balancer.json')
})
afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort()
  await rm(dir, { recursive: true, force: true })
})

function watch(store: FileStore): Recorder {
  const rec = new Recorder()
  const ac = new AbortController()
  aborts.push(ac)
  store.watch(ac.signal, rec.handlers)
  return rec
}

async function expectChange(rec: Recorder): Promise<StoreState> {
  const e = await rec.next()
  if (e.kind !== 'change') throw new Error(`expected a change, got error ${e.err.message}`)
  return e.state
}

async function expectError(rec: Recorder): Promise<BalancerError> {
  const e = await rec.next()
  if (e.kind !== 'error') throw new Error(`expected an error, got a change to ${e.state.revision}`)
  expect(e.err).toBeInstanceOf(BalancerError)
  return e.err as BalancerError
}

const addServer = (port: number) =>
  edit((cfg: Config): Config => {
    const s = { address: `:${port}`, filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [], routes: [] }
    return { servers: [...cfg.servers, s] }
  })

describe('FileStore load and update', () => {
  it('reads a missing file as the empty config and does not create it', async () => {
    const store = new FileStore(file)
    const state = await store.load()
    expect(state.config).toEqual({ servers: [] })
    expect(state.revision).toBe(configHash(state.config))
    expect(existsSync(file)).toBe(false)
  })

  it('throws the parse error for invalid content', async () => {
    writeFileSync(file, '{"servers": [ {"address": ":80", "upstreams": [{"Target": "a", "Port": "http"}]} ]}')
    const err = await new FileStore(file).load().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BalancerError)
    expect((err as BalancerError).code).toBe('E_VALIDATION')
    expect((err as BalancerError).problems.map((p) => p.path)).toEqual(['servers[0].upstreams[0].Port'])
    writeFileSync(file, '{"servers": [')
    await expect(new FileStore(file).load()).rejects.toMatchObject({ code: 'E_BAD_JSON' })
  })

  it('is durable: a new instance reads back what update wrote, in canonical form', async () => {
    const state = await new FileStore(file).update(addServer(8080))
    const text = readFileSync(file, 'utf8')
    expect(text).toBe(serializeConfig(state.config))
    const again = await new FileStore(file).load()
    expect(again).toEqual(state)
    expect(again.revision).toBe(configHash(again.config))
    // No temporary file is left behind (the lock file stays, for the next process).
    expect(readdir(dir)).toEqual(['balancer.json', 'balancer.json.lock'])
  })

  it('accepts the seed loose form with comments and writes it back canonical', async () => {
    writeFileSync(
      file,
      `// hand written
      [{ "address": ":80", "upstreams": { [ {"Target": "127.0.0.1", "Port": 80, "Weight": 2} ] },
         "fallbacks": { "127.0.0.1-81": { "Priority": 1 } } }]`,
    )
    const store = new FileStore(file)
    const loaded = await store.load()
    expect(loaded.config.servers[0]?.fallbacks).toEqual([{ Target: '127.0.0.1', Port: 81, Priority: 1, Weight: 1 }])
    const next = await store.update(addServer(81))
    expect(readFileSync(file, 'utf8')).toBe(serializeConfig(next.config))
    expect(next.config.servers.map((s) => s.address)).toEqual([':80', ':81'])
  })

  it('re-reads the file before mutating, so a hand edit is never overwritten', async () => {
    const store = new FileStore(file)
    await store.update(addServer(8080))
    writeFileSync(file, JSON.stringify([server(8080), server(9090)]))
    const next = await store.update(addServer(7070))
    expect(next.config.servers.map((s) => s.address)).toEqual([':8080', ':9090', ':7070'])
    expect(next.config.servers[1]?.upstreams[0]?.Port).toBe(9090)
  })

  it('sees a hand edit in place that keeps the file size, made right after a write', async () => {
    // The store skips reading a file it wrote itself; an edit of the same
    // length in the same inode must still be seen (its ctime changes).
    const store = new FileStore(file)
    await store.update(addServer(8080))
    const text = readFileSync(file, 'utf8')
    const fd = openSync(file, 'r+')
    writeSync(fd, text.replace('":8080"', '":8081"'), 0)
    closeSync(fd)
    expect(statSync(file).size).toBe(text.length)
    const next = await store.update(addServer(7070))
    expect(next.config.servers.map((s) => s.address)).toEqual([':8081', ':7070'])
    expect(readFileSync(file, 'utf8')).toBe(serializeConfig(next.config))
  })

  it('serialises concurrent updates: none is lost', async () => {
    const store = new FileStore(file)
    const ports = Array.from({ length: 25 }, (_, i) => 8000 + i)
    const results = await Promise.all(ports.map((p) => store.update(addServer(p))))
    const final = await new FileStore(file).load()
    expect(final.config.servers.map((s) => s.address).sort()).toEqual(ports.map((p) => `:${p}`).sort())
    // Each update saw every earlier one: the revisions are all distinct.
    expect(new Set(results.map((r) => r.revision)).size).toBe(ports.length)
  })

  it('leaves the file byte-identical when the parser or the mutation refuses a write', async () => {
    const hand = `// keep my comments\n[{"address": ":8080", "upstreams": [{"Target": "127.0.0.1", "Port": 80}]}]\n`
    writeFileSync(file, hand)
    const store = new FileStore(file)
    // Same port as the existing server: a whole-config conflict.
    await expect(store.update(addServer(8080))).rejects.toMatchObject({ code: 'E_CONFLICT' })
    // A field the normalizer refuses.
    const badPort = edit(
      (cfg: Config): Config => ({
        servers: cfg.servers.map((s) => ({ ...s, upstreams: [{ Target: '127.0.0.1', Port: 70000, Priority: 1, Weight: 1 }] })),
      }),
    )
    const err = (await store.update(badPort).catch((e: unknown) => e)) as BalancerError
    expect(err.code).toBe('E_VALIDATION')
    expect(err.problems[0]?.path).toBe('servers[0].upstreams[0].Port')
    // A mutation that throws.
    await expect(
      store.update(() => {
        throw new BalancerError('E_NOT_FOUND', 'nope')
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    expect(readFileSync(file, 'utf8')).toBe(hand)
    expect(readdir(dir)).toEqual(['balancer.json', 'balancer.json.lock'])
  })

  it('writes through a symlinked config file and keeps the link', async () => {
    mkdirSync(join(dir, 'real'))
    const real = join(dir, 'real', 'config.json')
    writeFileSync(real, '[]')
    symlinkSync(real, file)
    const state = await new FileStore(file).update(addServer(8080))
    expect(lstatSync(file).isSymbolicLink()).toBe(true)
    expect(readFileSync(real, 'utf8')).toBe(serializeConfig(state.config))
    expect(readdir(join(dir, 'real'))).toEqual(['config.json'])
  })

  it('does not rewrite the file when the mutation changes nothing', async () => {
    const hand = `[{"address": ":8080"}] // as I like it\n`
    writeFileSync(file, hand)
    const store = new FileStore(file)
    const before = await store.load()
    const after = await store.update((cfg) => cfg)
    expect(after.revision).toBe(before.revision)
    expect(readFileSync(file, 'utf8')).toBe(hand)
  })

  it('refuses to write over an invalid file and leaves it alone', async () => {
    writeFileSync(file, '[{"address": ":8080", "upstreams": [{"Target": "", "Port": 1}]}]')
    const err = (await new FileStore(file).update(addServer(9090)).catch((e: unknown) => e)) as BalancerError
    expect(err.code).toBe('E_VALIDATION')
    expect(err.message).toContain(file)
    expect(readFileSync(file, 'utf8')).toContain('"Target": ""')
  })
})

describe('FileStore watch', () => {
  it('reports the current config at start, then a hand edit in place within a second', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const store = new FileStore(file)
    const rec = watch(store)
    expect((await expectChange(rec)).config.servers.map((s) => s.address)).toEqual([':8080'])
    const t0 = Date.now()
    writeFileSync(file, JSON.stringify([server(8080), server(8081)]))
    const state = await expectChange(rec)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(state.config.servers.map((s) => s.address)).toEqual([':8080', ':8081'])
    expect(state.revision).toBe(configHash(state.config))
  })

  it('sees an editor that saves by writing a temp file and renaming it over', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = watch(new FileStore(file))
    await expectChange(rec)
    const tmp = join(dir, '.balancer.json.swp')
    writeFileSync(tmp, JSON.stringify([server(8080, 'backend.internal')]))
    const t0 = Date.now()
    renameSync(tmp, file)
    const state = await expectChange(rec)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(state.config.servers[0]?.upstreams[0]?.Target).toBe('backend.internal')
  })

  it('reports an invalid edit as an error, not a change, and recovers on the next valid edit', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = watch(new FileStore(file))
    const first = await expectChange(rec)
    writeFileSync(file, '[{"address": ":8080", "upstreams": [{"Target": "127.0.0.1", "Port": "http"}]}]')
    const err = await expectError(rec)
    expect(err.code).toBe('E_VALIDATION')
    expect(err.problems).toEqual([{ path: 'servers[0].upstreams[0].Port', message: expect.stringContaining('1-65535') }])
    writeFileSync(file, JSON.stringify([server(9090)]))
    const next = await expectChange(rec)
    expect(next.revision).not.toBe(first.revision)
    expect(rec.events.map((e) => e.kind)).toEqual(['change', 'error', 'change'])
  })

  it('reports one bad content once, and a different bad content again', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = watch(new FileStore(file, { pollMs: 40 }))
    await expectChange(rec)
    writeFileSync(file, '{ not json')
    expect((await expectError(rec)).code).toBe('E_BAD_JSON')
    // Same bytes again, with a new mtime: re-read (the poll sees it), not re-reported.
    writeFileSync(file, '{ not json')
    utimesSync(file, new Date(), new Date(Date.now() + 5000))
    // Asserts that the same bad content is not reported again: only a stretch of time
    // (several poll periods plus the debounce) can show it.
    await sleep(400)
    writeFileSync(file, '[{"address": "nope"}]')
    expect((await expectError(rec)).code).toBe('E_VALIDATION')
    expect(rec.events.map((e) => e.kind)).toEqual(['change', 'error', 'error'])
  })

  it('coalesces a burst of writes into one reload of the final content', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = watch(new FileStore(file))
    await expectChange(rec)
    for (let i = 1; i <= 10; i++) writeFileSync(file, JSON.stringify([server(8080 + i)]))
    const state = await expectChange(rec)
    expect(state.config.servers[0]?.address).toBe(':8090')
    // Asserts that nothing more arrives for the same content: only a stretch of time (one poll period) can show it.
    await sleep(700)
    expect(rec.events).toHaveLength(2)
  })

  it('falls back to polling when the directory cannot be watched yet', async () => {
    const later = join(dir, 'not-yet', 'balancer.json')
    const rec = watch(new FileStore(later, { pollMs: 50 }))
    expect((await expectChange(rec)).config).toEqual({ servers: [] })
    mkdirSync(join(dir, 'not-yet'))
    writeFileSync(later, JSON.stringify([server(8080)]))
    expect((await expectChange(rec)).config.servers[0]?.address).toBe(':8080')
  })

  it('treats a removed file as an error and keeps the last config', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = watch(new FileStore(file))
    await expectChange(rec)
    renameSync(file, join(dir, 'moved.json'))
    expect((await expectError(rec)).code).toBe('E_STORE_UNAVAILABLE')
  })

  it('stops on abort', async () => {
    writeFileSync(file, JSON.stringify([server(8080)]))
    const rec = new Recorder()
    const ac = new AbortController()
    new FileStore(file, { pollMs: 40 }).watch(ac.signal, rec.handlers)
    await expectChange(rec)
    ac.abort()
    writeFileSync(file, JSON.stringify([server(9090)]))
    // Asserts that a stopped watch reports nothing: only a stretch of time (ten poll periods) can show it.
    await sleep(400)
    expect(rec.events).toHaveLength(1)
  })
})

function readdir(d: string): string[] {
  return readdirSync(d).sort()
}
