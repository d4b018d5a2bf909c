// The canonical policy groups compile into each route's plan: durations to
// milliseconds, status ranges to pairs; a route's group replaces its
// server's; a route's `health: null` opts out of the server's check.
import { describe, expect, it } from 'vitest'
import { DEFAULT_PLANS, compile } from '../../src/compiler/compile.ts'
import type { RoutePlan } from '../../src/compiler/snapshot.ts'
import { parseConfigText } from '../../src/model/parse.ts'
import { serializeConfig } from '../../src/model/canonical.ts'

function routes(text: string): Map<string, RoutePlan> {
  const cfg = parseConfigText(text)
  // What is compiled is what the store writes back.
  const snap = compile(parseConfigText(serializeConfig(cfg)), 1)
  const out = new Map<string, RoutePlan>()
  for (const l of snap.listeners.values()) for (const r of l.routes) out.set(r.name, r)
  return out
}

describe('compile: policy groups', () => {
  const r = routes(`{"address":":8080",
    "health":{"path":"/healthz","interval":1500,"statuses":[200,"300-304"],"method":"head"},
    "retry":{"attempts":2,"statuses":"504,502"},
    "passive":{"ejection":"2s","maxejection":"1m"},
    "routes":[
      {"name":"inherits","filter":{"Hosts":["a.test"]}},
      {"name":"optout","filter":{"Hosts":["b.test"]},"health":null,"retry":null},
      {"name":"tcp","filter":{"Hosts":["c.test"]},"health":{"type":"TCP","interval":"1m","timeout":"5s"},"limits":{"maxconnections":7}}
    ]}`)

  it('the server groups apply to its own route and to routes that set none', () => {
    for (const name of ['default', 'inherits']) {
      const p = r.get(name)
      expect(p?.check).toMatchObject({
        type: 'http',
        method: 'HEAD',
        path: '/healthz',
        intervalMs: 1500,
        timeoutMs: 1500,
        statuses: [
          [200, 200],
          [300, 304],
        ],
      })
      expect(p?.retry).toEqual({ statuses: [502, 504], attempts: 2, budgetPercent: 20 })
      expect(p?.passive).toEqual({ failures: 3, ejectionMs: 2000, maxEjectionMs: 60_000, on5xx: false })
      expect(p?.limits).toEqual(DEFAULT_PLANS.limits)
    }
  })

  it('null on a route means its defaults: no check, default retry', () => {
    const p = r.get('optout')
    expect(p?.check).toBeNull()
    expect(p?.retry).toEqual(DEFAULT_PLANS.retry)
    expect(p?.passive.ejectionMs).toBe(2000)
  })

  it("a route's own group replaces the server's", () => {
    const p = r.get('tcp')
    expect(p?.check).toMatchObject({ type: 'tcp', probe: 'tcp', intervalMs: 60_000, timeoutMs: 5000 })
    expect(p?.limits).toEqual({ maxConnections: 7, maxPending: 0 })
  })

  it('without groups: no check and the default plans', () => {
    const p = routes('{"address":":80"}').get('default')
    expect(p?.check).toBeNull()
    expect(p?.passive).toEqual(DEFAULT_PLANS.passive)
    expect(p?.retry).toEqual(DEFAULT_PLANS.retry)
  })
})
