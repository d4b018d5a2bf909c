// The file store shared by real processes on one real file: each process's
// read-check-write holds flock(2) on `<config>.lock`, so concurrent writes
// from two processes all land (journal and whole-file regimes alike), a
// fold in one process drops nothing the other appends, a process killed
// while holding the lock leaves it free (the kernel releases it), and a
// process without node:ffi says once that it writes without the lock.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/model/errors.ts'
import type { Config } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import type { FileStoreOptions } from '../../src/store/file.ts'
import { edit } from '../support/edit.ts'
import { until } from '../support/poll.ts'

const CHILD = fileURLToPath(new URL('../support/services/file-store-child.ts', import.meta.url))

/** A FileStore in a child process (support/services/file-store-child.ts). */
class Child {
  readonly proc: ChildProcess
  readonly lines: Array<Record<string, unknown>> = []

  constructor(file: string, opts: FileStoreOptions, nodeArgs: string[] = []) {
    this.proc = spawn(process.execPath, [...nodeArgs, CHILD, file, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'] })
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.lines.push(JSON.parse(line) as Record<string, unknown>)
    })
  }

  /** The next line (not a notice) with `key`, after those already taken. */
  async next(key: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    let line: Record<string, unknown> | undefined
    await until(
      () => {
        const i = this.lines.findIndex((l) => key in l || 'error' in l)
        if (i >= 0) {
          line = this.lines.splice(i, 1)[0]
          return true
        }
        if (this.proc.exitCode !== null) throw new Error(`child: no "${key}" line (exit ${this.proc.exitCode})`)
        return false
      },
      timeoutMs,
      `the child's "${key}" line`,
    )
    const l = line as Record<string, unknown>
    if ('error' in l) throw new Error(`child: ${String(l.error)}`)
    return l
  }

  send(cmd: unknown): void {
    this.proc.stdin?.write(`${JSON.stringify(cmd)}\n`)
  }

  async addresses(): Promise<string[]> {
    this.send({ op: 'load' })
    return (await this.next('addresses')).addresses as string[]
  }

  notices(): string[] {
    return this.lines.filter((l) => 'notice' in l).map((l) => String(l.notice))
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return
    const exited = new Promise((r) => this.proc.once('exit', r))
    this.send({ op: 'close' })
    await exited
  }
}

let dir: string
let file: string
const children: Child[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'balancer-filelock-'))
  file = join(dir, 'balancer.json')
})
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGKILL')
    if (c.proc.exitCode === null && c.proc.signalCode === null) await new Promise((r) => c.proc.once('exit', r))
  }
  await rm(dir, { recursive: true, force: true })
})

function child(opts: FileStoreOptions, nodeArgs: string[] = []): Child {
  const c = new Child(file, opts, nodeArgs)
  children.push(c)
  return c
}

const addServer = (port: number) =>
  edit((cfg: Config): Config => {
    const s = { address: `:${port}`, filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [{ Target: '127.0.0.1', Port: 9, Priority: 1, Weight: 1 }], fallbacks: [], routes: [] }
    return { servers: [...cfg.servers, s] }
  })

/** The file with one server in it, written by a store as the balancer writes it. */
async function seed(): Promise<void> {
  const s = new FileStore(file)
  await s.update(addServer(7000))
  await s.close()
}

const onDisk = async (): Promise<string[]> => {
  const s = new FileStore(file, { foldQuietMs: 600_000 })
  try {
    return (await s.load()).config.servers.map((x) => x.address)
  } finally {
    await s.close()
  }
}

const N = 30
const portsOf = (k: number): number[] => Array.from({ length: N }, (_, i) => 10_000 + k * 1000 + i)
const sorted = (xs: string[]): string[] => [...xs].sort()
const expected = sorted([7000, ...portsOf(1), ...portsOf(2)].map((p) => `:${p}`))

const size = (path: string): number => (existsSync(path) ? statSync(path).size : 0)

describe('file store shared by two processes', () => {
  const regimes: Array<[string, FileStoreOptions]> = [
    ['through the journal', { journalFromBytes: 0, foldQuietMs: 600_000, foldRecords: 1_000_000 }],
    ['writing the whole file', { journalFromBytes: 1 << 30 }],
  ]
  it.each(regimes)('loses none of the writes two processes make at once, %s', async (regime, opts) => {
    await seed()
    const a = child(opts)
    const b = child(opts)
    await Promise.all([a.next('ready'), b.next('ready')])
    // Both read the same revision first, then write at once.
    expect(await a.addresses()).toEqual([':7000'])
    expect(await b.addresses()).toEqual([':7000'])
    a.send({ op: 'write', ports: portsOf(1) })
    b.send({ op: 'write', ports: portsOf(2) })
    await Promise.all([a.next('ok'), b.next('ok')])
    expect(sorted(await a.addresses())).toEqual(expected)
    expect(sorted(await b.addresses())).toEqual(expected)
    if (regime === 'through the journal') expect(size(`${file}.journal`)).toBeGreaterThan(0)
    else expect(size(`${file}.journal`)).toBe(0)
    // A fresh load (which folds the journal when it closes).
    expect(sorted(await onDisk())).toEqual(expected)
    await Promise.all([a.close(), b.close()])
    // Closing folded the journal: the file alone holds every write.
    expect(size(`${file}.journal`)).toBe(0)
    const text = JSON.parse(readFileSync(file, 'utf8')) as { servers: Array<{ address: string }> }
    expect(sorted(text.servers.map((s) => s.address))).toEqual(expected)
    expect((statSync(`${file}.lock`).mode & 0o777).toString(8)).toBe('600')
  })

  it('loses nothing the other process appends while one folds the journal again and again', async () => {
    await seed()
    // a folds in the background after every second record; b only appends.
    const a = child({ journalFromBytes: 0, foldRecords: 2, foldQuietMs: 1 })
    const b = child({ journalFromBytes: 0, foldQuietMs: 600_000, foldRecords: 1_000_000 })
    await Promise.all([a.next('ready'), b.next('ready')])
    await Promise.all([a.addresses(), b.addresses()])
    a.send({ op: 'write', ports: portsOf(1) })
    b.send({ op: 'write', ports: portsOf(2) })
    await Promise.all([a.next('ok'), b.next('ok')])
    expect(sorted(await onDisk())).toEqual(expected)
    expect(sorted(await a.addresses())).toEqual(expected)
    expect(sorted(await b.addresses())).toEqual(expected)
    await Promise.all([a.close(), b.close()])
    expect(size(`${file}.journal`)).toBe(0)
    const text = JSON.parse(readFileSync(file, 'utf8')) as { servers: Array<{ address: string }> }
    expect(sorted(text.servers.map((s) => s.address))).toEqual(expected)
  })

  it('a process killed while it holds the lock leaves it free: the next write of the other succeeds', async () => {
    await seed()
    const a = child({})
    await a.next('ready')
    a.send({ op: 'hold' })
    await a.next('holding')
    const b = new FileStore(file, { lockTimeoutMs: 300 })
    try {
      const before = readFileSync(file, 'utf8')
      // While a holds it, b's write gives up after its bound, naming the lock file, with nothing written.
      const err = await b.update(addServer(8000)).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(BalancerError)
      expect((err as BalancerError).code).toBe('E_STORE_UNAVAILABLE')
      expect((err as BalancerError).message).toContain(`${file}.lock`)
      expect(readFileSync(file, 'utf8')).toBe(before)
      a.proc.kill('SIGKILL')
      await new Promise((r) => a.proc.once('exit', r))
      const st = await b.update(addServer(8000))
      expect(st.config.servers.map((s) => s.address)).toEqual([':7000', ':8000'])
      expect(await onDisk()).toEqual([':7000', ':8000'])
    } finally {
      await b.close()
    }
  })

  it('without node:ffi, writes as before and says once that they are not serialized with other processes', async () => {
    await seed()
    const a = child({}, ['--no-experimental-ffi'])
    await a.next('ready')
    a.send({ op: 'write', ports: [8000, 8001, 8002] })
    await a.next('ok')
    expect(sorted(await onDisk())).toEqual([':7000', ':8000', ':8001', ':8002'])
    expect(a.notices()).toHaveLength(1)
    expect(a.notices()[0]).toContain('not serialized with other processes')
  })
})
