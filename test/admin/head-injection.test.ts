// Values that would break a request head are refused through the API and in
// the configuration file, with the field named, and nothing stored changes.

import { afterEach, describe, expect, it } from 'vitest'
import { FileStore } from '../../src/store/file.ts'
import { BalancerError } from '../../src/model/errors.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

const STORED = '{"servers":[{"address":":8080","upstreams":[{"Target":"127.0.0.1","Port":8081}]}]}\n'

describe('request-head injection', () => {
  it('through the API: CR LF, NUL, tabs and characters above U+007E in paths, hosts and targets are 400 naming each field', async () => {
    api = await startApi({ fileText: STORED })
    const cases: Array<[string, string, unknown, string]> = [
      ['PUT', '/server/:8080/health', { Path: '/h\r\nX-Injected: 1' }, 'body.Path'],
      ['PUT', '/server/:8080/health', { Path: '/h\u010d\u010aX-Injected: 1' }, 'body.Path'],
      ['PUT', '/server/:8080/health', { Host: 'a\u0000b' }, 'body.Host'],
      ['PUT', '/server/:8080/filter', { PathPrefix: '/a\tb' }, 'body.PathPrefix'],
      ['PUT', '/server/:8080/filter', { PathPrefix: '/caf\u00e9' }, 'body.PathPrefix'],
      ['PUT', '/server/:8080/filter', { Hosts: ['a.example\r\nX: y'] }, 'body.Hosts[0]'],
      ['POST', '/server', { address: ':9000', upstreams: [{ Target: 'a\nb', Port: 80 }] }, 'body.upstreams[0].Target'],
    ]
    for (const [method, path, body, field] of cases) {
      const r = await api.send(method, path, { body })
      expect([path, r.status, r.json.code]).toEqual([path, 400, 'E_VALIDATION'])
      expect(r.json.problems.map((p: { path: string }) => p.path)).toEqual([field])
    }
    expect(api.fileText()).toBe(STORED)
  })

  it('in the configuration file: the load is refused naming servers[i]…', async () => {
    api = await startApi({ fileText: STORED })
    const bad = '{"servers":[{"address":":8080","filter":{"PathPrefix":"/a\\r\\nb"},"health":{"Path":"/\\u010a"}}]}'
    const { writeFileSync } = await import('node:fs')
    writeFileSync(api.file, bad)
    const err = await new FileStore(api.file).load().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BalancerError)
    expect((err as BalancerError).code).toBe('E_VALIDATION')
    expect((err as BalancerError).problems.map((p) => p.path)).toEqual(['servers[0].filter.PathPrefix', 'servers[0].health.Path'])
  })
})
