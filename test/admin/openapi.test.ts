// openapi.yaml is the API's one description: Swagger UI serves it, and the
// routes fastify has must be exactly the operations it documents.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { listRoutes } from '../../src/admin/server.ts'
import { loadOpenApi } from '../../src/admin/docs.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
beforeEach(async () => {
  api = await startApi()
})
afterEach(async () => {
  await api.close()
})

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head'] as const

/**
 * OpenAPI path -> fastify route. `{target}-{port}` is one fastify parameter
 * (`:member`) because the split must happen at the LAST dash, which the router
 * cannot express; every other `{x}` is `:x`.
 */
function toFastify(path: string): string {
  return path.replaceAll('{target}-{port}', ':member').replace(/\{(\w+)\}/g, ':$1')
}

async function documented(): Promise<string[]> {
  const doc = (await loadOpenApi()) as unknown as { paths: Record<string, Record<string, unknown>> }
  const ops: string[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) if (m in item) ops.push(`${m.toUpperCase()} ${toFastify(path)}`)
  }
  return ops.sort()
}

/** HEAD routes are fastify's automatic twins of GET; /docs serves the document itself. */
function registered(): string[] {
  return listRoutes(api.app)
    .filter((r) => r.method !== 'HEAD' && r.url !== '/docs' && !r.url.startsWith('/docs/'))
    .map((r) => `${r.method} ${r.url}`)
    .sort()
}

describe('openapi.yaml', () => {
  it('documents every registered route, and nothing that is not registered', async () => {
    const docs = await documented()
    const routes = registered()
    expect(routes.length).toBeGreaterThanOrEqual(33)
    expect(routes.filter((r) => !docs.includes(r))).toEqual([])
    expect(docs.filter((d) => !routes.includes(d))).toEqual([])
  })

  it('is OpenAPI 3.1 with bearer auth, ETag and If-Match, and every referenced component exists', async () => {
    const doc = (await loadOpenApi()) as unknown as Record<string, any>
    expect(doc.openapi).toMatch(/^3\.1\./)
    expect(doc.components.securitySchemes.bearer).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }))
    expect(doc.components.headers.ETag).toBeDefined()
    expect(doc.components.parameters.IfMatch.in).toBe('header')
    for (const name of ['Server', 'Route', 'Upstream', 'Filter', 'Error', 'Config']) expect(doc.components.schemas[name]).toBeDefined()
    const refs = JSON.stringify(doc).match(/"#\/components\/[^"]+"/g) ?? []
    for (const ref of new Set(refs)) {
      const target = ref
        .slice(3, -1)
        .split('/')
        .reduce((o: any, k) => o?.[k], doc)
      expect(target, ref).toBeDefined()
    }
    // Every path parameter in a template is declared.
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      const declared = (item.parameters ?? []).map((p: { $ref: string }) => doc.components.parameters[p.$ref.split('/').pop() ?? ''].name)
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      expect(declared.filter((n: string) => n !== 'If-Match').sort(), path).toEqual(templated.sort())
    }
  })
})

describe('Swagger UI', () => {
  it('serves HTML at /docs and the document with every path at /docs/json', async () => {
    const page = await api.send('GET', '/docs')
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect(page.text).toContain('swagger-ui')
    const json = await api.send('GET', '/docs/json')
    expect(json.status).toBe(200)
    expect(Object.keys(json.json.paths)).toEqual(expect.arrayContaining(['/', '/server', '/server/{address}', '/server/{address}/upstream/{target}-{port}']))
    const yaml = await api.send('GET', '/docs/yaml')
    expect(yaml.status).toBe(200)
    expect(yaml.text).toContain('openapi: 3.1.0')
  })
})
