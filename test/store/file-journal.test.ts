// The file store's journal against real files: writes to a large file are
// appended to `<config>.journal` and synced, folded into the file off the
// request path, replayed at load (a torn last record ignored, a damaged one
// reported), a hand edit of the file wins over pending records, a fold under
// concurrent writes loses none, and the journal takes the file's permissions.

import { appendFileSync, chmodSync, existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { serializeConfig } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import type { Config } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import { decodeJournal, encodeRecord } from '../../src/store/file-journal.ts'
import type { FileStoreOptions } from '../../src/store/file.ts'
import type { StoreState } from '../../src/store/store.ts'
import { edit } from '../support/edit.ts'
import { until } from '../support/poll.ts'

let dir: string
let file: string
let journal: string
const stores: FileStore[] = []
const aborts: AbortController[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'balancer-journal-'))
  file = join(dir, 'balancer.json')
  journal = `${file}.journal`
})
afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort()
  for (const s of stores.splice(0)) await s.close()
  await rm(dir, { recursive: true, force: true })
})

/** Every write after the file exists goes to the journal; no fold unless the test asks for one. */
function store(opts: FileStoreOptions = {}): FileStore {
  const s = new FileStore(file, { journalFromBytes: 0, foldQuietMs: 600_000, ...opts })
  stores.push(s)
  return s
}

const addServer = (port: number) =>
  edit((cfg: Config): Config => {
    const s = { address: `:${port}`, filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [{ Target: '127.0.0.1', Port: port + 1, Priority: 1, Weight: 1 }], fallbacks: [], routes: [] }
    return { servers: [...cfg.servers, s] }
  })

const setPort = (address: string, port: number) =>
  edit((cfg: Config): Config => ({ servers: cfg.servers.map((s) => (s.address === address ? { ...s, upstreams: [{ Target: '127.0.0.1', Port: port, Priority: 1, Weight: 1 }] } : s)) }))

const size = (path: string): number => (existsSync(path) ? statSync(path).size : 0)
const addresses = (s: StoreState): string[] => s.config.servers.map((x) => x.address)

/** A fresh store (another process's view) loading what is on disk. */
async function onDisk(): Promise<StoreState> {
  return new FileStore(file, { journalFromBytes: 0, foldQuietMs: 600_000 }).load()
}

describe('FileStore journal', () => {
  it('appends writes to the journal and leaves the file alone; a new instance replays them', async () => {
    const s = store()
    await s.update(addServer(8000))
    const first = readFileSync(file, 'utf8')
    expect(size(journal)).toBe(0)
    await s.update(addServer(8010))
    const last = await s.update(setPort(':8000', 9999))
    expect(readFileSync(file, 'utf8')).toBe(first)
    expect(size(journal)).toBeGreaterThan(0)
    const again = await onDisk()
    expect(again.revision).toBe(last.revision)
    expect(again.config).toEqual(last.config)
    expect(addresses(again)).toEqual([':8000', ':8010'])
    expect(again.config.servers[0]?.upstreams[0]?.Port).toBe(9999)
  })

  it('writes a small file whole, as before: no journal below journalFromBytes', async () => {
    const s = store({ journalFromBytes: 1024 * 1024 })
    await s.update(addServer(8000))
    const last = await s.update(addServer(8010))
    expect(readFileSync(file, 'utf8')).toBe(serializeConfig(last.config))
    expect(existsSync(journal)).toBe(false)
  })

  it('folds the journal into the file after a quiet time, and on close', async () => {
    const s = store({ foldQuietMs: 50 })
    await s.update(addServer(8000))
    const last = await s.update(addServer(8010))
    await until(() => size(journal) === 0 && readFileSync(file, 'utf8') === serializeConfig(last.config), 10_000, 'the fold')
    const t = store()
    await t.update(addServer(8020))
    const closedAt = await t.update(addServer(8030))
    expect(size(journal)).toBeGreaterThan(0)
    await t.close()
    expect(size(journal)).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(serializeConfig(closedAt.config))
    expect(readdirSync(dir).sort()).toEqual(['balancer.json', 'balancer.json.journal', 'balancer.json.lock'])
  })

  it('ignores a torn last record (never acknowledged) and appends after the whole ones', async () => {
    const s = store()
    await s.update(addServer(8000))
    const last = await s.update(addServer(8010))
    const whole = size(journal)
    // A record cut short: its frame says 100,000 bytes, 3,992 follow (more than the next record overwrites).
    const torn = Buffer.alloc(4000)
    torn.writeUInt32BE(100_000, 0)
    appendFileSync(journal, torn)
    const t = store()
    expect((await t.load()).revision).toBe(last.revision)
    const next = await t.update(addServer(8020))
    // The torn bytes were cut before the append: the file is whole records only.
    const bytes = readFileSync(journal)
    expect(decodeJournal(bytes, journal).validBytes).toBe(bytes.length)
    expect(addresses(await onDisk())).toEqual([':8000', ':8010', ':8020'])
    expect((await onDisk()).revision).toBe(next.revision)
    expect(size(journal)).toBeGreaterThan(whole)
    // A tail of zeros (a file system that grew the file but wrote no data) is torn too.
    appendFileSync(journal, Buffer.alloc(64))
    expect((await onDisk()).revision).toBe(next.revision)
  })

  it('reports a record that fails its checksum, naming the journal and the record, and replays nothing', async () => {
    const s = store()
    await s.update(addServer(8000))
    await s.update(addServer(8010))
    const firstEnd = size(journal)
    await s.update(addServer(8020))
    const bytes = readFileSync(journal)
    // Flip one byte inside the second record's payload.
    const at = firstEnd + 20
    bytes[at] = (bytes[at] as number) ^ 0xff
    writeFileSync(journal, bytes)
    const text = readFileSync(file, 'utf8')
    const err = (await onDisk().catch((e: unknown) => e)) as BalancerError
    expect(err).toBeInstanceOf(BalancerError)
    expect(err.code).toBe('E_STORE_UNAVAILABLE')
    expect(err.message).toContain(journal)
    expect(err.message).toContain('record 2')
    expect(err.message).toContain('checksum')
    // Nothing was touched: the operator decides.
    expect(readFileSync(journal)).toEqual(bytes)
    expect(readFileSync(file, 'utf8')).toBe(text)
  })

  it('reports a record that does not lead to the revision it recorded, and replays nothing', async () => {
    const s = store()
    const first = await s.update(addServer(8000))
    const second = await s.update(addServer(8010))
    // A whole record, checksum and all, whose edit does not reach its recorded revision.
    appendFileSync(journal, encodeRecord(second.config, second.revision, first.config, 'not-the-revision'))
    const err = (await onDisk().catch((e: unknown) => e)) as BalancerError
    expect(err).toBeInstanceOf(BalancerError)
    expect(err.code).toBe('E_STORE_UNAVAILABLE')
    expect(err.message).toContain(journal)
    expect(err.message).toContain(`leads to revision ${first.revision}, recorded not-the-revision`)
  })

  it('a hand edit of the file wins over pending records: they are set aside, and the next write builds on the edit', async () => {
    const s = store()
    await s.update(addServer(8000))
    await s.update(addServer(8010))
    await s.update(addServer(8020))
    expect(size(journal)).toBeGreaterThan(0)
    const pending = readFileSync(journal)
    const events: StoreState[] = []
    const errors: Error[] = []
    const ac = new AbortController()
    aborts.push(ac)
    s.watch(ac.signal, { onChange: (st) => events.push(st), onError: (e) => errors.push(e) })
    await until(() => events.length === 1, 10_000, 'the first report')
    expect(addresses(events[0] as StoreState)).toEqual([':8000', ':8010', ':8020'])
    // An editor saves the file (it saw only the first server, the others were pending).
    writeFileSync(`${file}.tmp`, JSON.stringify([{ address: ':7000', upstreams: [{ Target: '127.0.0.1', Port: 7001 }] }]))
    renameSync(`${file}.tmp`, file)
    await until(() => events.length === 2, 10_000, 'the hand edit to be reported')
    expect(addresses(events[1] as StoreState)).toEqual([':7000'])
    expect(errors).toEqual([])
    expect(readFileSync(`${journal}.discarded`)).toEqual(pending)
    const next = await s.update(addServer(8030))
    expect(addresses(next)).toEqual([':7000', ':8030'])
    const again = await onDisk()
    expect(again.revision).toBe(next.revision)
  })

  it('a hand edit made while no process runs wins too, at load', async () => {
    const s = store()
    await s.update(addServer(8000))
    await s.update(addServer(8010))
    writeFileSync(file, JSON.stringify([{ address: ':7000', upstreams: [{ Target: '127.0.0.1', Port: 7001 }] }]))
    const loaded = await onDisk()
    expect(addresses(loaded)).toEqual([':7000'])
    expect(existsSync(`${journal}.discarded`)).toBe(true)
  })

  it('two instances on one file see each other through the journal: a watch reports the writes of the other, a write builds on them', async () => {
    const a = store()
    const b = store()
    await a.update(addServer(8000))
    const events: StoreState[] = []
    const ac = new AbortController()
    aborts.push(ac)
    b.watch(ac.signal, { onChange: (st) => events.push(st), onError: () => undefined })
    await until(() => events.length === 1, 10_000, 'the first report')
    // Appended to the journal only: the file itself does not change.
    const fromA = await a.update(addServer(8010))
    expect(size(journal)).toBeGreaterThan(0)
    await until(() => events.length === 2, 10_000, "the other instance's write to be reported")
    expect((events[1] as StoreState).revision).toBe(fromA.revision)
    const fromB = await b.update(addServer(8020))
    const again = await a.update(addServer(8030))
    expect(addresses(again)).toEqual([':8000', ':8010', ':8020', ':8030'])
    expect(addresses(fromB)).toEqual([':8000', ':8010', ':8020'])
    expect((await onDisk()).revision).toBe(again.revision)
  })

  it('folds under concurrent writes without losing one', async () => {
    // Folds start every 3 records and run while later writes append.
    const s = store({ foldRecords: 3 })
    await s.update(addServer(7000))
    const ports = Array.from({ length: 40 }, (_, i) => 8000 + i * 2)
    const results: StoreState[] = []
    // Four writers, each writing in turn: folds take the lock between their writes.
    await Promise.all(
      [0, 1, 2, 3].map(async (w) => {
        for (const p of ports.filter((_, i) => i % 4 === w)) {
          const st = await s.update(addServer(p))
          results.push(st)
          // Once answered, a write is on disk whatever folds run meanwhile.
          expect(addresses(await onDisk())).toContain(`:${p}`)
        }
      }),
    )
    expect(new Set(results.map((r) => r.revision)).size).toBe(ports.length)
    const last = results.reduce((a, b) => (b.config.servers.length > a.config.servers.length ? b : a))
    expect((await onDisk()).revision).toBe(last.revision)
    await s.close()
    expect(size(journal)).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(serializeConfig(last.config))
    expect(addresses(last).sort()).toEqual([':7000', ...ports.map((p) => `:${p}`)].sort())
    expect(readdirSync(dir).sort()).toEqual(['balancer.json', 'balancer.json.journal', 'balancer.json.lock'])
  })

  it('gives the journal the file permissions (0600 stays 0600 through writes, folds and a hand edit)', async () => {
    writeFileSync(file, '[]')
    chmodSync(file, 0o600)
    const s = store({ foldQuietMs: 20 })
    await s.update(addServer(8000))
    await s.update(addServer(8010))
    expect(statSync(journal).mode & 0o777).toBe(0o600)
    await until(() => size(journal) === 0, 10_000, 'the fold')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    await s.update(addServer(8020))
    await s.update(addServer(8030))
    expect(statSync(journal).mode & 0o777).toBe(0o600)
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })
})
