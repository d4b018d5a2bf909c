// The configuration the store micro benchmarks write to: `n` servers, one
// host filter and two upstreams each, written as a config file in a new
// temporary directory (the caller removes `dir`).

import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function configFile(prefix: string, n: number): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const file = join(dir, 'balancer.json')
  const servers = Array.from({ length: n }, (_, i) => ({
    address: `127.0.0.1:${20000 + i}`,
    filter: { Hosts: [`app${i}.example.com`] },
    upstreams: [
      { Target: '10.0.0.1', Port: 8080 },
      { Target: '10.0.0.2', Port: 8080 },
    ],
  }))
  writeFileSync(file, JSON.stringify({ servers }))
  return { dir, file }
}
