// Golden files for the one merge: test/golden/merge/<name>.in.json holds
// { base, found } and <name>.out.json the merged config (canonical form), the
// problems and the origins. Refresh with UPDATE_GOLDEN=1.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { serializeConfig } from '../../src/model/canonical.ts'
import type { Discovered } from '../../src/control/merge.ts'
import { discoveredRouteName, mergeDiscovered, originKey, parseDiscovered } from '../../src/control/merge.ts'
import { normalizeConfig } from '../../src/model/parse.ts'
import { assertValidConfig, validateConfig } from '../../src/model/validate.ts'
import type { Config, Server, Upstream } from '../../src/model/types.ts'

const DIR = resolve(import.meta.dirname, '../golden/merge')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

interface Case {
  base: Config
  found: Discovered[]
}

function load(name: string): Case {
  const raw = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { base: unknown; found: Discovered[] }
  const base = normalizeConfig(raw.base)
  assertValidConfig(base)
  return { base, found: raw.found }
}

function render(c: Case): string {
  const r = mergeDiscovered(c.base, c.found.map(parseDiscovered))
  const origins = Object.fromEntries([...r.origins].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  return `${JSON.stringify({ config: JSON.parse(serializeConfig(r.config)) as unknown, problems: r.problems, origins, ...(r.refused.length > 0 ? { refused: r.refused } : {}) }, null, 2)}\n`
}

const inputs = readdirSync(DIR)
  .filter((n) => n.endsWith('.in.json'))
  .sort()

describe('mergeDiscovered golden files', () => {
  it('has the expected cases', () => {
    expect(inputs).toEqual(expect.arrayContaining(['shared-filter.in.json', 'into-store.in.json', 'conflicts.in.json', 'two-origins.in.json', 'trust.in.json']))
  })

  for (const name of inputs) {
    const base = name.replace(/\.in\.json$/, '')
    const outPath = join(DIR, `${base}.out.json`)
    it(base, () => {
      const c = load(name)
      const before = serializeConfig(c.base)
      const got = render(c)
      if (UPDATE) writeFileSync(outPath, got)
      expect(existsSync(outPath), `${outPath} missing; run with UPDATE_GOLDEN=1`).toBe(true)
      expect(got).toBe(readFileSync(outPath, 'utf8'))
      // Pure: the inputs are not touched, the result is valid, and the same call gives the same bytes.
      expect(serializeConfig(c.base)).toBe(before)
      expect(validateConfig(mergeDiscovered(c.base, c.found.map(parseDiscovered)).config)).toEqual([])
      expect(render(c)).toBe(got)
    })
  }
})

const up = (Target: string, Port: number): Upstream => ({ Target, Port, Priority: 1, Weight: 1 })
const server = (address: string, hosts: string[], ups: Server['upstreams']): Server => ({
  address,
  filter: { Hosts: hosts, Schemes: [], PathPrefix: '' },
  upstreams: ups,
  fallbacks: [],
  routes: [],
})

describe('mergeDiscovered', () => {
  it('gives the same result whatever order the origins arrive in', () => {
    const a: Discovered = { origin: 'docker', servers: [server(':80', ['a.test'], [up('172.17.0.2', 80)])], names: ['a'] }
    const b: Discovered = { origin: 'swarm', servers: [server(':80', ['b.test'], [up('10.0.0.2', 80)])], names: ['b'] }
    const one = mergeDiscovered({ servers: [] }, [a, b].map(parseDiscovered))
    const two = mergeDiscovered({ servers: [] }, [b, a].map(parseDiscovered))
    expect(serializeConfig(one.config)).toBe(serializeConfig(two.config))
    expect([...one.origins]).toEqual([...two.origins])
  })

  it('names extra routes validly and stably', () => {
    const f = { Hosts: ['x.test'], Schemes: [], PathPrefix: '/p' }
    const n = discoveredRouteName('docker', f)
    expect(n).toMatch(/^docker-[0-9a-f]{8}$/)
    expect(discoveredRouteName('docker', { ...f })).toBe(n)
    expect(discoveredRouteName('swarm', f)).not.toBe(n)
    expect(discoveredRouteName('Weird Origin!', f)).toMatch(/^[a-z0-9][a-z0-9_.-]{0,62}$/)
  })

  it('avoids a store route that holds the generated name by chance', () => {
    const filter = { Hosts: ['x.test'], Schemes: [], PathPrefix: '' }
    const name = discoveredRouteName('docker', filter)
    const base: Config = {
      servers: [{ ...server(':80', [], []), routes: [{ name, filter: { Hosts: ['y.test'], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [] }] }],
    }
    const r = mergeDiscovered(base, [parseDiscovered({ origin: 'docker', servers: [server(':80', ['x.test'], [up('172.17.0.2', 80)])], names: ['x'] })])
    expect(r.config.servers[0]?.routes.map((x) => x.name)).toEqual([name, `${name}-2`])
    expect(r.origins.get(originKey(':80', `${name}-2`, 'upstreams', up('172.17.0.2', 80)))).toEqual({ origin: 'docker', name: 'x' })
    expect(r.problems).toEqual([])
  })
})
