// The compress group as written in the API, files, KV values and labels:
// read by the one model, every problem reported with its path, written back
// in one canonical form.

import { describe, expect, it } from 'vitest'
import { DEFAULT_TYPES } from '../../src/model/compress.ts'
import { BalancerError } from '../../src/model/errors.ts'
import { readLabels } from '../../src/model/labels.ts'
import { parseConfig, parseConfigText } from '../../src/model/parse.ts'
import { serializeConfig } from '../../src/model/canonical.ts'

const server = (extra: Record<string, unknown>) => ({ address: ':8080', upstreams: [{ Target: '10.0.0.1', Port: 80 }], ...extra })

function problems(raw: unknown): Array<{ path: string; message: string }> {
  try {
    parseConfig(raw)
  } catch (e) {
    if (e instanceof BalancerError) return e.problems
    throw e
  }
  return []
}

describe('compress in the configuration', () => {
  it('`"compress": {}` is the defaults; fields are completed and written back whole', () => {
    const cfg = parseConfig({ servers: [server({ compress: {} })] })
    expect(cfg.servers[0]?.compress).toEqual({ Encodings: ['zstd', 'br', 'gzip'], Types: [...DEFAULT_TYPES], MinBytes: 1024 })
    const loose = parseConfig({ servers: [server({ compress: { encodings: 'BR, gzip', types: 'text/*,Application/JSON', minbytes: '256' } })] })
    expect(loose.servers[0]?.compress).toEqual({ Encodings: ['br', 'gzip'], Types: ['text/*', 'application/json'], MinBytes: 256 })
    const text = serializeConfig(loose)
    expect(JSON.parse(text).servers[0].compress).toEqual({ Encodings: ['br', 'gzip'], Types: ['text/*', 'application/json'], MinBytes: 256 })
    expect(serializeConfig(parseConfigText(text))).toBe(text)
  })

  it('a route replaces its server group, or turns it off with null', () => {
    const cfg = parseConfig({
      servers: [
        server({
          compress: { Encodings: ['gzip'] },
          routes: [
            { name: 'api', filter: { PathPrefix: '/api' }, upstreams: [{ Target: '10.0.0.2', Port: 80 }], compress: { MinBytes: 0 } },
            { name: 'raw', filter: { PathPrefix: '/raw' }, upstreams: [{ Target: '10.0.0.3', Port: 80 }], compress: null },
          ],
        }),
      ],
    })
    const routes = cfg.servers[0]?.routes ?? []
    expect(routes[0]?.compress?.Encodings).toEqual(['zstd', 'br', 'gzip'])
    expect(routes[0]?.compress?.MinBytes).toBe(0)
    expect(routes[1]?.compress).toBeNull()
    expect(JSON.parse(serializeConfig(cfg)).servers[0].routes[1].compress).toBeNull()
  })

  it('reports every problem with its path', () => {
    const got = problems({
      servers: [server({ compress: { Encodings: ['gzip', 'deflate', 'gzip'], Types: ['text/html; charset=utf-8', 'nothing'], MinBytes: -1, Level: 9 } })],
    })
    expect(got.map((p) => p.path).sort()).toEqual([
      'servers[0].compress.Encodings[1]',
      'servers[0].compress.Encodings[2]',
      'servers[0].compress.Level',
      'servers[0].compress.MinBytes',
      'servers[0].compress.Types[0]',
      'servers[0].compress.Types[1]',
    ])
    expect(got.find((p) => p.path.endsWith('Encodings[1]'))?.message).toBe('must be one of zstd, br, gzip, got "deflate"')
    expect(problems({ servers: [server({ compress: true })] })).toEqual([{ path: 'servers[0].compress', message: 'must be an object, got true' }])
    expect(problems({ servers: [server({ compress: { Encodings: [] } })] })[0]?.path).toBe('servers[0].compress.Encodings')
  })
})

describe('compress labels', () => {
  const labels = (extra: Record<string, string>) => {
    const r = readLabels({ 'balancer.enable': 'true', ...extra })
    if (!r.enabled) throw new Error('not enabled')
    return r
  }

  it('balancer.compress=true is the defaults; field labels set the rest', () => {
    expect(labels({ 'balancer.compress': 'true' }).settings?.policy.compress).toEqual({ Encodings: ['zstd', 'br', 'gzip'], Types: [...DEFAULT_TYPES], MinBytes: 1024 })
    expect(labels({ 'balancer.compress': 'false' }).settings?.policy.compress).toBeUndefined()
    const r = labels({ 'balancer.compress': 'true', 'balancer.compress.encodings': 'gzip,br', 'balancer.compress.types': 'text/*', 'balancer.compress.minbytes': '0' })
    expect(r.problems).toEqual([])
    expect(r.settings?.policy.compress).toEqual({ Encodings: ['gzip', 'br'], Types: ['text/*'], MinBytes: 0 })
    expect(labels({ 'balancer.compress.minbytes': '2048' }).settings?.policy.compress?.MinBytes).toBe(2048)
  })

  it('bad labels keep the container out, naming the label', () => {
    const r = labels({ 'balancer.compress': 'yes', 'balancer.compress.encodings': 'lzma', 'balancer.compress.level': '9' })
    expect(r.settings).toBeNull()
    expect(r.problems.map((p) => p.path).sort()).toEqual(['balancer.compress', 'balancer.compress.encodings', 'balancer.compress.level'])
  })
})
