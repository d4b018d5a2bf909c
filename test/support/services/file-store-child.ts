// A FileStore in a process of its own, driven one JSON line at a time on
// stdin, answering one JSON line on stdout: the other balancer sharing a
// file, for the store's cross-process tests (test/store/file-lock.test.ts).
//   {"op":"write","ports":[...]}  adds a server per port, all at once
//   {"op":"load"}                 the addresses of the store's state
//   {"op":"hold"}                 takes the store's locks and never lets go
//                                 (answers {"holding":true} first)
//   {"op":"close"}                closes the store and exits
// Notices (onNotice) are lines {"notice": "..."}.
// Usage: node file-store-child.ts FILE OPTIONS_JSON

import { writeSync } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Config } from '../../../src/model/types.ts'
import { FileStore } from '../../../src/store/file.ts'
import { edit } from '../edit.ts'

const [file, opts] = process.argv.slice(2) as [string, string]
const say = (o: unknown): void => {
  writeSync(1, `${JSON.stringify(o)}\n`)
}
const store = new FileStore(file, { ...JSON.parse(opts), onNotice: (notice: string) => say({ notice }) })

const addServer = (port: number) =>
  edit((cfg: Config): Config => {
    const s = { address: `:${port}`, filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [{ Target: '127.0.0.1', Port: 9, Priority: 1, Weight: 1 }], fallbacks: [], routes: [] }
    return { servers: [...cfg.servers, s] }
  })

async function handle(cmd: { op: string; ports?: number[] }): Promise<unknown> {
  switch (cmd.op) {
    case 'write':
      await Promise.all((cmd.ports ?? []).map((p) => store.update(addServer(p))))
      return { ok: true }
    case 'load':
      return { addresses: (await store.load()).config.servers.map((s) => s.address) }
    case 'hold':
      return store.update(() => {
        say({ holding: true })
        // Blocks this process with the locks held, until it is killed.
        for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000)
      })
    case 'close':
      await store.close()
      say({ ok: true })
      process.exit(0)
      return null
    default:
      throw new Error(`unknown op ${cmd.op}`)
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  handle(JSON.parse(line)).then(say, (err: unknown) => say({ error: err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err) }))
})
say({ ready: true })
