// The policy groups' field rules (src/model/policy.ts): loose forms in, whole
// canonical groups out, every problem with its path.
import { describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/model/errors.ts'
import type { Problem } from '../../src/model/errors.ts'
import { formatDuration, parseDuration } from '../../src/model/duration.ts'
import { serializeConfig } from '../../src/model/canonical.ts'
import { normalizeGroup, normalizeRoute, normalizeServer, parseConfigText } from '../../src/model/parse.ts'
import { POLICY_DEFAULTS } from '../../src/model/types.ts'

function problems(fn: () => unknown): Problem[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(BalancerError)
    return (err as BalancerError).problems
  }
  throw new Error('expected a validation error')
}

describe('durations', () => {
  it('text with a unit or a number of milliseconds; written back in the largest exact unit', () => {
    const h = (Interval: unknown) => normalizeGroup('health', { Interval, Timeout: '100ms' }).Interval
    expect(h('1500ms')).toBe('1500ms')
    expect(h('1.5s')).toBe('1500ms')
    expect(h(2000)).toBe('2s')
    expect(h('120s')).toBe('2m')
    expect(h('60m')).toBe('1h')
    expect(h(' 5S ')).toBe('5s')
  })

  it('a string without a unit, a negative or fractional number, and other text are refused', () => {
    for (const v of ['500', -5, 1.5, 'fast', '', true]) {
      expect(
        problems(() => normalizeGroup('health', { Interval: v })),
        String(v),
      ).toEqual([{ path: 'body.Interval', message: expect.stringMatching(/^must be a duration like 5s or 500ms, got /) }])
    }
  })

  it('formatDuration and parseDuration agree', () => {
    for (const ms of [1, 100, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms)
  })
})

describe('health', () => {
  it('an empty group is the defaults', () => {
    expect(normalizeGroup('health', {})).toEqual(POLICY_DEFAULTS.health)
  })

  it('Type and Method in any letter case; Host lower-cased; statuses from numbers, strings or one list string', () => {
    expect(normalizeGroup('health', { type: 'TCP', METHOD: 'head', host: 'App.Example.com:8080', statuses: '200, 204,300-399' })).toMatchObject({
      Type: 'tcp',
      Method: 'HEAD',
      Host: 'app.example.com:8080',
      Statuses: ['200', '204', '300-399'],
    })
    expect(normalizeGroup('health', { Statuses: [200, '200', '200-200'] }).Statuses).toEqual(['200'])
  })

  it('Timeout left out is 2s or the Interval when that is shorter; given longer than Interval it is a problem', () => {
    expect(normalizeGroup('health', { Interval: '1s' }).Timeout).toBe('1s')
    expect(normalizeGroup('health', { Interval: '10s' }).Timeout).toBe('2s')
    expect(problems(() => normalizeGroup('health', { Interval: '1s', Timeout: '1001ms' }))).toEqual([{ path: 'body.Timeout', message: 'must not be longer than Interval (1s), got "1001ms"' }])
  })

  it('bounds: Interval 100ms-1h, Timeout from 10ms, Rise and Fall 1-100, statuses 100-599 and at least one', () => {
    expect(problems(() => normalizeGroup('health', { Interval: '99ms', Timeout: '5ms', Rise: 101, Fall: '0', Statuses: [] }))).toEqual([
      { path: 'body.Statuses', message: 'must list at least one status, e.g. ["200-399"]' },
      { path: 'body.Interval', message: 'must be between 100ms and 1h, got "99ms"' },
      { path: 'body.Timeout', message: 'must be between 10ms and 1h, got "5ms"' },
      { path: 'body.Rise', message: 'must be an integer 1-100, got 101' },
      { path: 'body.Fall', message: 'must be an integer 1-100, got "0"' },
    ])
    expect(problems(() => normalizeGroup('health', { Path: '/a b', Host: 'http://x', Statuses: ['600', '399-200'] })).map((p) => p.path)).toEqual([
      'body.Path',
      'body.Host',
      'body.Statuses[0]',
      'body.Statuses[1]',
    ])
  })
})

describe('passive, retry, limits', () => {
  it('passive: EjectOn5xx from a boolean or its text; MaxEjection left out follows a longer Ejection', () => {
    expect(normalizeGroup('passive', { ejectOn5xx: 'TRUE', ejection: '2m' })).toEqual({ Failures: 3, Ejection: '2m', MaxEjection: '2m', EjectOn5xx: true })
    expect(problems(() => normalizeGroup('passive', { Ejection: '10s', MaxEjection: '5s' }))).toEqual([{ path: 'body.MaxEjection', message: 'must not be shorter than Ejection (10s), got "5s"' }])
  })

  it('retry: statuses sorted and unique, may be empty; Attempts 1-10, Budget 0-100', () => {
    expect(normalizeGroup('retry', { Statuses: ['504', 502, 504] })).toEqual({ Statuses: [502, 504], Attempts: 3, Budget: 20 })
    expect(normalizeGroup('retry', { Statuses: [] }).Statuses).toEqual([])
    expect(problems(() => normalizeGroup('retry', { Attempts: 0, Budget: '101', Statuses: ['5xx'] })).map((p) => p.path)).toEqual(['body.Statuses[0]', 'body.Attempts', 'body.Budget'])
  })

  it('limits: 0-1000000, digit strings accepted', () => {
    expect(normalizeGroup('limits', { maxconnections: '5' })).toEqual({ MaxConnections: 5, MaxPending: 0 })
    expect(problems(() => normalizeGroup('limits', { MaxPending: 1_000_001 }))).toEqual([{ path: 'body.MaxPending', message: 'must be an integer 0-1000000, got 1000001' }])
  })
})

describe('groups on servers and routes', () => {
  it('a server: null is the same as absent', () => {
    const s = normalizeServer({ address: ':80', health: null, retry: null, passive: null, limits: null })
    expect(Object.keys(s)).toEqual(['address', 'filter', 'upstreams', 'fallbacks', 'routes'])
  })

  it('a route: absent inherits; null is "the defaults, not the server" (health: no check)', () => {
    const r = normalizeRoute({ name: 'a', health: null, retry: null })
    expect(r.health).toBeNull()
    expect(r.retry).toEqual(POLICY_DEFAULTS.retry)
    expect(r).not.toHaveProperty('passive')
  })

  it('the canonical form is a fixed point, with groups after fallbacks and before routes', () => {
    const text = serializeConfig(parseConfigText('{"address":":80","limits":{},"routes":[{"name":"a","filter":{"Hosts":["a.test"]},"health":null,"passive":{"failures":0}}]}'))
    expect(serializeConfig(parseConfigText(text))).toBe(text)
    const s = JSON.parse(text).servers[0]
    expect(Object.keys(s)).toEqual(['address', 'filter', 'upstreams', 'fallbacks', 'limits', 'routes'])
    expect(Object.keys(s.routes[0])).toEqual(['name', 'filter', 'upstreams', 'fallbacks', 'health', 'passive'])
  })

  it('paths name the server and route: servers[0].routes[1].retry.Attempts', () => {
    expect(problems(() => parseConfigText('[{"address":":80","routes":[{"name":"a","filter":{"Hosts":["a.test"]}},{"name":"b","filter":{"Hosts":["b.test"]},"retry":{"Attempts":11}}]}]'))).toEqual([
      { path: 'servers[0].routes[1].retry.Attempts', message: 'must be an integer 1-10, got 11' },
    ])
  })
})
