import { describe, expect, it } from 'vitest'
import { serializeConfig } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import { readLabels } from '../../src/model/labels.ts'
import { normalizeServer } from '../../src/model/parse.ts'

function problems(raw: unknown): Array<{ path: string; message: string }> {
  try {
    normalizeServer(raw, 'body')
    return []
  } catch (err) {
    return (err as BalancerError).problems
  }
}

describe('the discovery field of a stored server or route', () => {
  it('takes "allow", "deny" (any case) and {"Constraint": EXPR}, written back canonical', () => {
    const s = normalizeServer({
      address: ':80',
      Discovery: 'DENY',
      routes: [
        { name: 'shop', discovery: { constraint: '  project:shop || label:team=web ' } },
        { name: 'open', discovery: 'allow' },
      ],
    })
    expect(s.discovery).toBe('deny')
    expect(s.routes.map((r) => r.discovery)).toEqual([{ Constraint: 'project:shop || label:team=web' }, 'allow'])
    const text = serializeConfig({ servers: [s] })
    expect(text).toContain('"discovery": "deny"')
    expect(text).toContain('"Constraint": "project:shop || label:team=web"')
    expect(normalizeServer(JSON.parse(text).servers[0])).toEqual(s)
  })

  it('absent or null is absent', () => {
    expect('discovery' in normalizeServer({ address: ':80' })).toBe(false)
    expect('discovery' in normalizeServer({ address: ':80', discovery: null })).toBe(false)
  })

  it('refuses anything else, naming the field and the column of a bad expression', () => {
    expect(problems({ address: ':80', discovery: 'maybe' })).toEqual([{ path: 'body.discovery', message: 'must be "allow", "deny" or {"Constraint": "EXPR"}, got "maybe"' }])
    expect(problems({ address: ':80', routes: [{ name: 'r', discovery: { Constraint: 'label:a &&' } }] })).toEqual([
      { path: 'body.routes[0].discovery.Constraint', message: 'column 11: expected a term: label:KEY[=VALUE], network:NAME, project:NAME, stack:NAME or name:GLOB' },
    ])
    expect(problems({ address: ':80', discovery: { Constraint: 3 } })[0]?.path).toBe('body.discovery.Constraint')
    expect(problems({ address: ':80', discovery: { Constraint: 'label:a', extra: 1 } })[0]?.path).toBe('body.discovery.extra')
  })

  it('labels cannot set it: a container cannot grant itself trust', () => {
    const r = readLabels({ 'balancer.enable': 'true', 'balancer.discovery': 'allow' })
    expect(r.enabled && r.notes.map((n) => n.path)).toEqual(['balancer.discovery'])
  })
})
