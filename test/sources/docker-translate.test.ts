// Golden files for the Docker labels translator: test/golden/docker/<case>.in.json
// holds real `docker inspect` output (trimmed to the fields discovery reads)
// and the balancer's own container, <case>.out.json what each container
// contributes. Refresh with UPDATE_GOLDEN=1.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ContainerInspect } from '../../src/docker-api/types.ts'
import { translateContainer } from '../../src/sources/docker/translate.ts'
import { validateConfig } from '../../src/model/validate.ts'
import { mergeDiscovered, parseDiscovered } from '../../src/control/merge.ts'

const DIR = resolve(import.meta.dirname, '../golden/docker')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

interface Case {
  self: { id: string; networkIds: string[] } | null
  containers: ContainerInspect[]
}

const inputs = readdirSync(DIR)
  .filter((n) => n.endsWith('.in.json'))
  .sort()

describe('docker labels -> servers (golden)', () => {
  it('has the expected cases', () => {
    expect(inputs).toEqual(expect.arrayContaining(['outside-docker.in.json', 'inside-docker.in.json', 'health.in.json', 'problems.in.json', 'labelled-network.in.json']))
  })
  for (const name of inputs) {
    const base = name.replace(/\.in\.json$/, '')
    it(base, () => {
      const c = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as Case
      const self = c.self === null ? null : { id: c.self.id, networkIds: new Set(c.self.networkIds) }
      const results = c.containers.map((x) => translateContainer(x, self))
      const got = `${JSON.stringify(results, null, 2)}\n`
      const outPath = join(DIR, `${base}.out.json`)
      if (UPDATE) writeFileSync(outPath, got)
      expect(existsSync(outPath), `${outPath} missing; run with UPDATE_GOLDEN=1`).toBe(true)
      expect(got).toBe(readFileSync(outPath, 'utf8'))
      // Whatever the translator emits merges into a valid config.
      const servers = results.flatMap((r) => (r?.server ? [r.server] : []))
      const merged = mergeDiscovered({ servers: [] }, [parseDiscovered({ origin: 'docker', servers })])
      expect(validateConfig(merged.config)).toEqual([])
    })
  }
})
