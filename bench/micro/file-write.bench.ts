// Micro benchmark of one file store write on a 1,000-server configuration,
// with and without the lock balancers sharing the file take (flock(2) on
// `<config>.lock`, store/file-lock.ts): the same code run with node:ffi and
// with --no-experimental-ffi (the store then writes without the lock, as
// before it had one). Both regimes: the whole file replaced (below 1 MiB,
// the default) and one record appended to the journal. Sequential writes,
// one process, nobody else holding the lock: the lock's own cost (flock
// and unlock per write, the descriptor kept open) beside the fsyncs of the write.
// Rounds alternate the two modes; the figures are medians of the rounds
// (an fsync's time varies more than the lock costs: see the lock alone,
// taken and released LOCKS times with nothing inside).
// Run: node bench/micro/file-write.bench.ts  (no assertions)

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseEdit } from '../../src/model/parse.ts'
import type { Config } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import { FileLock } from '../../src/store/file-lock.ts'
import type { FileStoreOptions } from '../../src/store/file.ts'
import { configFile } from './store-file.ts'

const SERVERS = 1000
const WRITES = 200
const ROUNDS = 5
const LOCKS = 20_000

if (process.argv[2] === '--child') {
  const out = { whole: await msPerWrite({}), journal: await msPerWrite({ journalFromBytes: 0, foldQuietMs: 600_000, foldRecords: 1_000_000, foldBytes: 1 << 30 }) }
  process.stdout.write(`${JSON.stringify(out)}\n`)
} else {
  const runs: Record<'lock' | 'none', Array<{ whole: number; journal: number }>> = { lock: [], none: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['lock', 'none'] as const) {
      const flags = mode === 'none' ? ['--no-experimental-ffi'] : []
      const res = spawnSync(process.execPath, [...flags, import.meta.filename, '--child'], { encoding: 'utf8' })
      if (res.status !== 0) throw new Error(`file-write bench child failed: ${res.stderr}`)
      runs[mode].push(JSON.parse(res.stdout))
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  console.log(`file store write, ${SERVERS} servers, ${WRITES} writes x ${ROUNDS} rounds (ms per write, median of rounds)`)
  console.log(`  the lock alone (flock, unlock): ${(await usPerLock()).toFixed(1)} us per write`)
  for (const regime of ['whole', 'journal'] as const) {
    const lock = median(runs.lock.map((x) => x[regime]))
    const none = median(runs.none.map((x) => x[regime]))
    console.log(`  ${regime === 'whole' ? 'whole file' : 'journal   '}  without lock ${none.toFixed(3)}  with flock ${lock.toFixed(3)}  ratio ${(lock / none).toFixed(2)}`)
  }
}

async function usPerLock(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-bench-file-'))
  try {
    const lock = new FileLock(join(dir, 'balancer.json'), { timeoutMs: 1000, onNotice: () => undefined })
    const none = async (): Promise<void> => {}
    for (let i = 0; i < 1000; i++) await lock.run(none)
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < LOCKS; i++) await lock.run(none)
    return Number(process.hrtime.bigint() - t0) / 1e3 / LOCKS
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function msPerWrite(opts: FileStoreOptions): Promise<number> {
  const { dir, file } = configFile('balancer-bench-file-', SERVERS)
  try {
    const store = new FileStore(file, { ...opts, onNotice: () => undefined })
    await store.load()
    const write = (i: number) =>
      store.update((cur) =>
        parseEdit(cur, {
          servers: cur.servers.map((s, k) => (k === i % SERVERS ? { ...s, upstreams: s.upstreams.map((u, j) => (j === 0 ? { ...u, Weight: 2 + (i % 2) } : u)) } : s)),
        } as Config),
      )
    for (let i = 0; i < 20; i++) await write(i) // warm up
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < WRITES; i++) await write(i)
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / WRITES
    await store.close()
    return ms
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
