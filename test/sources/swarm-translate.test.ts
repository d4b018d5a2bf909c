// Golden files for the Swarm translator: test/golden/swarm/<case>.in.json
// holds real /services and /tasks output (trimmed to the fields discovery
// reads), the balancer's own container and the tasks seen stopping;
// <case>.out.json what each service contributes. Refresh with UPDATE_GOLDEN=1.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { SwarmService, SwarmTask } from '../../src/docker-api/types.ts'
import { translateService } from '../../src/sources/swarm/translate.ts'
import { mergeDiscovered, parseDiscovered } from '../../src/control/merge.ts'
import { validateConfig } from '../../src/model/validate.ts'

const DIR = resolve(import.meta.dirname, '../golden/swarm')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

interface Case {
  self: { id: string; networkIds: string[] } | null
  gone: string[]
  services: Array<{ service: SwarmService; tasks: SwarmTask[] }>
}

const inputs = readdirSync(DIR)
  .filter((n) => n.endsWith('.in.json'))
  .sort()

describe('swarm services -> servers (golden)', () => {
  it('has the expected cases', () => {
    expect(inputs).toEqual(expect.arrayContaining(['tasks.in.json', 'vip-and-dnsrr.in.json', 'outside-docker.in.json', 'inside-docker.in.json', 'gone-task.in.json']))
  })
  for (const name of inputs) {
    const base = name.replace(/\.in\.json$/, '')
    it(base, () => {
      const c = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as Case
      const self = c.self === null ? null : { id: c.self.id, networkIds: new Set(c.self.networkIds) }
      const results = c.services.map((s) => translateService(s.service, s.tasks, self, new Set(c.gone)))
      const got = `${JSON.stringify(results, null, 2)}\n`
      const outPath = join(DIR, `${base}.out.json`)
      if (UPDATE) writeFileSync(outPath, got)
      expect(existsSync(outPath), `${outPath} missing; run with UPDATE_GOLDEN=1`).toBe(true)
      expect(got).toBe(readFileSync(outPath, 'utf8'))
      const servers = results.flatMap((r) => (r?.server ? [r.server] : []))
      expect(validateConfig(mergeDiscovered({ servers: [] }, [parseDiscovered({ origin: 'swarm', servers })]).config)).toEqual([])
    })
  }
})
