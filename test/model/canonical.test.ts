import { describe, expect, it } from 'vitest'
import { configHash, sameConfig, serializeConfig } from '../../src/model/canonical.ts'
import { parseConfigText } from '../../src/model/parse.ts'
import type { Config } from '../../src/model/types.ts'

const cfg: Config = parseConfigText('{"address":":8080","upstreams":[{"Target":"www.google.com","Port":80}]}')

describe('serializeConfig', () => {
  it('writes every field, in types.ts order, 2-space indented, with a trailing newline', () => {
    expect(serializeConfig(cfg)).toBe(
      [
        '{',
        '  "servers": [',
        '    {',
        '      "address": ":8080",',
        '      "filter": {',
        '        "Hosts": [],',
        '        "Schemes": [],',
        '        "PathPrefix": ""',
        '      },',
        '      "upstreams": [',
        '        {',
        '          "Target": "www.google.com",',
        '          "Port": 80,',
        '          "Priority": 1,',
        '          "Weight": 1',
        '        }',
        '      ],',
        '      "fallbacks": [],',
        '      "routes": []',
        '    }',
        '  ]',
        '}',
        '',
      ].join('\n'),
    )
  })

  it('does not depend on key order in memory and drops foreign properties', () => {
    const shuffled = {
      servers: [
        {
          routes: [],
          fallbacks: [],
          upstreams: [{ Weight: 1, Priority: 1, Port: 80, Target: 'www.google.com', extra: true }],
          filter: { PathPrefix: '', Schemes: [], Hosts: [] },
          address: ':8080',
        },
      ],
    } as unknown as Config
    expect(serializeConfig(shuffled)).toBe(serializeConfig(cfg))
  })

  it('writes the empty config', () => {
    expect(serializeConfig({ servers: [] })).toBe('{\n  "servers": []\n}\n')
  })
})

describe('configHash', () => {
  it('is 16 base64url characters, stable across key order', () => {
    const h = configHash(cfg)
    expect(h).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(configHash({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe(configHash({ a: [1, { c: 3, d: 2 }], b: 1 }))
    expect(configHash(JSON.parse(JSON.stringify(cfg)))).toBe(h)
  })

  it('changes with any value and with array order', () => {
    const other = parseConfigText('{"address":":8080","upstreams":[{"Target":"www.google.com","Port":81}]}')
    expect(configHash(other)).not.toBe(configHash(cfg))
    expect(configHash([1, 2])).not.toBe(configHash([2, 1]))
    expect(configHash({ a: 1 })).not.toBe(configHash({ a: '1' }))
  })

  it('hashes any model value, e.g. one upstream, for an ETag', () => {
    const u = cfg.servers[0]?.upstreams[0]
    expect(configHash(u)).toBe(configHash({ Target: 'www.google.com', Port: 80, Priority: 1, Weight: 1 }))
  })
})

describe('sameConfig', () => {
  it('is true for equal content written differently, false otherwise', () => {
    const a = parseConfigText('{"address":":80","upstreams":{"a-1":{}},"filter":{"Schemes":["HTTPS","http"]}}')
    const b = parseConfigText('[{"address":":80","filter":{"Schemes":["http","https"]},"upstreams":[{"Target":"a","Port":1,"Weight":1}]}]')
    const c = parseConfigText('[{"address":":80","upstreams":[{"Target":"a","Port":1,"Weight":2}]}]')
    expect(sameConfig(a, b)).toBe(true)
    expect(sameConfig(a, c)).toBe(false)
  })
})
