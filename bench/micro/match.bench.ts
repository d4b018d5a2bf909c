// Micro benchmark of the route matcher on a listener with several virtual
// hosts: an exact host, a wildcard, a path prefix, and a miss (404).
// Run: node bench/micro/match.bench.ts  (prints ns/op; no assertions)

import { compile } from '../../src/compiler/compile.ts'
import { matchRoute } from '../../src/engine/match.ts'
import { Scheme } from '../../src/compiler/snapshot.ts'
import type { ListenerPlan } from '../../src/compiler/snapshot.ts'
import { parseConfig } from '../../src/model/parse.ts'
import { bench } from './timing.ts'

const up = (port: number): object => ({ Target: '10.0.0.1', Port: port })
const raw = {
  servers: [
    {
      address: ':8080',
      upstreams: [up(9000)],
      routes: [
        { name: 'shop', filter: { Hosts: ['shop.example.com', 'www.shop.example.com'] }, upstreams: [up(9001)] },
        { name: 'api', filter: { Hosts: ['api.example.com'], PathPrefix: '/v1' }, upstreams: [up(9002)] },
        { name: 'apps', filter: { Hosts: ['*.apps.example.com'] }, upstreams: [up(9003)] },
        { name: 'static', filter: { PathPrefix: '/static/' }, upstreams: [up(9004)] },
        { name: 'blog', filter: { Hosts: ['blog.example.com'] }, upstreams: [up(9005)] },
      ],
    },
  ],
}
const snap = compile(parseConfig(raw), 1)
const l = [...snap.listeners.values()][0] as ListenerPlan

const cases: Array<[string, string, string]> = [
  ['exact host', 'shop.example.com', '/cart'],
  ['exact host + path prefix', 'api.example.com', '/v1/items'],
  ['wildcard host', 'team1.apps.example.com', '/'],
  ['any host, path prefix', 'unknown.test', '/static/app.js'],
  ['any host, default route', 'unknown.test', '/'],
]
for (const [name, host, path] of cases) {
  if (matchRoute(l, host, path, Scheme.Http) === null) throw new Error(`no route for ${name}`)
  bench(`match: ${name}`, () => matchRoute(l, host, path, Scheme.Http), 2_000_000)
}
