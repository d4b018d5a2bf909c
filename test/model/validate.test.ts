import { describe, expect, it } from 'vitest'
import { BalancerError, ErrorCode } from '../../src/model/errors.ts'
import type { Config, Server } from '../../src/model/types.ts'
import { assertValidConfig, validateConfig } from '../../src/model/validate.ts'

function server(address: string, extra: Partial<Server> = {}): Server {
  return { address, filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [], routes: [], ...extra }
}

function thrown(cfg: Config): BalancerError {
  try {
    assertValidConfig(cfg)
  } catch (err) {
    expect(err).toBeInstanceOf(BalancerError)
    return err as BalancerError
  }
  throw new Error('expected assertValidConfig to throw')
}

describe('validateConfig', () => {
  it('returns [] for a valid config', () => {
    const cfg: Config = {
      servers: [server(':80', { upstreams: [{ Target: 'a', Port: 1, Priority: 1, Weight: 1 }] }), server('127.0.0.1:81'), server('127.0.0.1:82'), server('127.0.0.2:82')],
    }
    expect(validateConfig(cfg)).toEqual([])
    expect(() => assertValidConfig(cfg)).not.toThrow()
  })

  it('reports duplicate addresses and listen conflicts on the later server, naming the other', () => {
    const cfg: Config = { servers: [server(':8080'), server('8080'), server('127.0.0.1:8080'), server('0.0.0.0:9'), server('10.0.0.1:9')] }
    expect(validateConfig(cfg)).toEqual([
      { path: 'servers[1].address', message: 'same listen address as servers[0] (":8080"); add routes to that server instead' },
      { path: 'servers[2].address', message: 'port 8080 is already taken by servers[0] (":8080"), which listens on every interface' },
      { path: 'servers[4].address', message: 'port 9 is already taken by servers[3] ("0.0.0.0:9"), which listens on 0.0.0.0' },
    ])
  })

  it('reports routes of one server whose filters accept the same requests', () => {
    const cfg: Config = {
      servers: [
        server(':80', {
          filter: { Hosts: ['a.com'], Schemes: [], PathPrefix: '' },
          routes: [
            { name: 'x', filter: { Hosts: ['a.com'], Schemes: ['http', 'https'], PathPrefix: '' }, upstreams: [], fallbacks: [] },
            { name: 'y', filter: { Hosts: ['a.com'], Schemes: ['https'], PathPrefix: '' }, upstreams: [], fallbacks: [] },
            { name: 'z', filter: { Hosts: ['a.com'], Schemes: ['https'], PathPrefix: '' }, upstreams: [], fallbacks: [] },
          ],
        }),
      ],
    }
    expect(validateConfig(cfg)).toEqual([
      { path: 'servers[0].routes[0].filter', message: 'same filter as route "default"' },
      { path: 'servers[0].routes[2].filter', message: 'same filter as route "y"' },
    ])
  })

  it('holds a Config built in code to the field rules too', () => {
    const cfg = { servers: [server(':80', { upstreams: [{ Target: 'a', Port: 0, Priority: 1, Weight: 1 }] }), server(':80')] }
    expect(validateConfig(cfg)).toEqual([
      { path: 'servers[0].upstreams[0].Port', message: 'must be an integer 1-65535, got 0' },
      { path: 'servers[1].address', message: 'same listen address as servers[0] (":80"); add routes to that server instead' },
    ])
  })
})

describe('assertValidConfig', () => {
  it('throws E_CONFLICT (409) when every problem is a clash between addresses', () => {
    const err = thrown({ servers: [server(':80'), server('127.0.0.1:80')] })
    expect(err.code).toBe(ErrorCode.Conflict)
    expect(err.status).toBe(409)
    expect(err.problems.map((p) => p.path)).toEqual(['servers[1].address'])
  })

  it('throws E_VALIDATION listing every problem when any is not a clash', () => {
    const bad = server(':80', {
      filter: { Hosts: [], Schemes: [], PathPrefix: '' },
      routes: [{ name: 'r', filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [] }],
    })
    const err = thrown({ servers: [bad, server(':80')] })
    expect(err.code).toBe(ErrorCode.Validation)
    expect(err.problems.map((p) => p.path)).toEqual(['servers[1].address', 'servers[0].routes[0].filter'])
  })
})
