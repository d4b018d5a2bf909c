// Route rules as an operator writes them, compiled by the real model and
// compiler, for engine tests that listen on port 0 (which compile() refuses
// as a server address): the RulesPlan of a one-route server.

import { compile } from '../../src/compiler/compile.ts'
import type { RulesPlan } from '../../src/compiler/snapshot.ts'
import { parseConfig } from '../../src/model/parse.ts'

export function rulesOf(groups: Record<string, unknown>, pathPrefix = ''): RulesPlan | null {
  const cfg = parseConfig({ servers: [{ address: '127.0.0.1:1', filter: { PathPrefix: pathPrefix }, upstreams: [{ Target: '127.0.0.1', Port: 1 }], ...groups }] })
  const listener = [...compile(cfg, 1).listeners.values()][0]
  const route = listener?.routes[0]
  if (route === undefined) throw new Error('no route compiled')
  return route.rules
}
