// Micro benchmark of pick(): smooth weighted round robin over priority tiers,
// on the runtime the engine builds from a compiled snapshot.
// Run: node bench/micro/pick.bench.ts  (prints ns/op; no assertions)

import { compile } from '../../src/compiler/compile.ts'
import { pick } from '../../src/engine/lb/pick.ts'
import type { RouteRuntime } from '../../src/engine/lb/pick.ts'
import { buildRuntimes } from '../../src/engine/lb/runtimes.ts'
import { Registry } from '../../src/engine/upstream/registry.ts'
import type { Upstream } from '../../src/engine/upstream/registry.ts'
import { parseConfig } from '../../src/model/parse.ts'
import { bench } from './timing.ts'

function runtime(upstreams: object[]): RouteRuntime {
  const snap = compile(parseConfig({ servers: [{ address: ':8080', upstreams }] }), 1)
  const registry = new Registry()
  registry.ensure(snap.targets)
  // No active check in these configs: the check lookup is never asked.
  const lr = [...buildRuntimes(snap.listeners, registry, () => undefined, new Map(), new Map()).values()][0]
  const rt = lr?.routes[0]
  if (rt === undefined) throw new Error('no route runtime')
  return rt
}

const up = (port: number, weight = 1, priority = 1): object => ({ Target: '10.0.0.1', Port: port, Weight: weight, Priority: priority })
const none: readonly Upstream[] = []
const now = Date.now()
const cases: Array<[string, RouteRuntime]> = [
  ['1 upstream', runtime([up(9000)])],
  ['2 upstreams, equal weights', runtime([up(9000), up(9001)])],
  ['8 upstreams, weights 1-8', runtime(Array.from({ length: 8 }, (_, i) => up(9000 + i, i + 1)))],
  ['2 tiers (4 + 4 backup)', runtime([...Array.from({ length: 4 }, (_, i) => up(9000 + i)), ...Array.from({ length: 4 }, (_, i) => up(9100 + i, 1, 2))])],
]
for (const [name, rt] of cases) bench(`pick: ${name}`, () => pick(rt, now, none), 5_000_000)
