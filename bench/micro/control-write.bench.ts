// Micro benchmark of the control plane's write path: API writes on a
// 500-server configuration in the file store, through the real admin API
// (fastify inject, no socket), the store, the merge and the compiler. The
// engine is left out (snapshots are compiled, then dropped): what is
// measured is the cost of one change before it reaches the data plane.
//
// Prints CPU time per 1,000 writes, and how often one write walks the whole
// configuration: normalisation passes (calls of the model's per-server reader
// divided by the server count), whole-config validations and whole-config
// serialisations, counted with V8's precise coverage (call counts).
// Run: node bench/micro/control-write.bench.ts  (no assertions)

import { rmSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { buildAdmin } from '../../src/admin/server.ts'
import { Control } from '../../src/control/control.ts'
import { engineTarget } from '../../src/control/reloader.ts'
import { FileStore } from '../../src/store/file.ts'
import { configFile } from './store-file.ts'

const SERVERS = 500
const WRITES = 1000
const COUNTED = 20

const { dir, file } = configFile('balancer-bench-write-', SERVERS)

// The wiring of src/main.ts with one engine in the process, less the engine:
// every change is compiled as for the engine, and the snapshot dropped.
const store = new FileStore(file)
const control = new Control({ store, initial: await store.load(), target: engineTarget({ apply: async () => {} }) })
await control.start()
const app = await buildAdmin({ control, token: null, logger: false })
await app.ready()

let n = 0
async function write(): Promise<void> {
  const i = n++
  const res = await app.inject({
    method: 'PUT',
    url: `/server/127.0.0.1:${20000 + (i % SERVERS)}/upstream/10.0.0.1-8080`,
    payload: { Weight: 1 + (Math.floor(i / SERVERS) % 2 === 0 ? 1 : 0) },
  })
  if (res.statusCode !== 200) throw new Error(`write ${i}: ${res.statusCode} ${res.body}`)
}

for (let i = 0; i < 50; i++) await write() // warm up
const c0 = process.cpuUsage()
const t0 = process.hrtime.bigint()
for (let i = 0; i < WRITES; i++) await write()
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6
const c1 = process.cpuUsage(c0)
const cpuMs = (c1.user + c1.system) / 1000

const session = new Session()
session.connect()
await session.post('Profiler.enable')
await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: false })
await write()
await session.post('Profiler.takePreciseCoverage') // resets the counters
for (let i = 0; i < COUNTED; i++) await write()
const { result } = await session.post('Profiler.takePreciseCoverage')
await session.post('Profiler.stopPreciseCoverage')
session.disconnect()

function calls(fileEnd: string, fn: string): number {
  let total = 0
  for (const script of result) {
    if (!script.url.endsWith(fileEnd)) continue
    for (const f of script.functions) if (f.functionName === fn) total += f.ranges[0]?.count ?? 0
  }
  return total
}

const per = (x: number): string => (x / COUNTED).toFixed(1).padStart(8)
console.log(`${'write path: cpu per 1,000 API writes'.padEnd(40)} ${cpuMs.toFixed(0).padStart(8)} ms  (${SERVERS} servers, wall ${wallMs.toFixed(0)} ms, file store)`)
console.log(`${'write path: normalisation passes/write'.padEnd(40)} ${per(calls('model/normalize.ts', 'readServer') / SERVERS)}`)
console.log(`${'write path: whole-config validations/write'.padEnd(40)} ${per(calls('model/validate.ts', 'listenProblems'))}`)
console.log(`${'write path: whole-config serialisations/write'.padEnd(40)} ${per(calls('model/canonical.ts', 'serializeConfig'))}`)

await app.close()
rmSync(dir, { recursive: true, force: true })
