// The API's documentation. openapi.yaml at the repository root is the one
// description of the API (paths, parameters, request and response schemas);
// it is served as written (@fastify/swagger static mode) with Swagger UI at
// /docs, the document itself at /docs/json and /docs/yaml. Handlers do not
// validate against it: the model's normalizers accept the seed's loose forms
// and name every problem, which a JSON-schema pass could not.
//
// Loaded on the first request under /docs, not at start: Swagger UI, the
// YAML parser and the parsed document cost the main process about 14 MiB
// resident (measured with bench/run.ts --only memory), which a balancer whose
// docs nobody opens should not carry. The API answers /docs by handing the
// request to a fastify instance of its own that holds both plugins; the
// access checks (the Host, the origin; the token does not apply to /docs) run
// in the API before it is handed on.

import { readFile } from 'node:fs/promises'
import type { StaticDocumentSpec } from '@fastify/swagger'
import fastify from 'fastify'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DOCS_PREFIX } from './access.ts'

export const OPENAPI_URL = new URL('../../openapi.yaml', import.meta.url)

export type OpenApiDocument = StaticDocumentSpec['document']

/** Reads and parses openapi.yaml; checks only that it looks like an OpenAPI document. */
export async function loadOpenApi(): Promise<OpenApiDocument> {
  const { parse } = await import('yaml')
  const doc: unknown = parse(await readFile(OPENAPI_URL, 'utf8'))
  if (typeof doc !== 'object' || doc === null || !('openapi' in doc) || !('paths' in doc)) {
    throw new Error(`${OPENAPI_URL.pathname} is not an OpenAPI document`)
  }
  return doc as OpenApiDocument
}

/** Request headers that change what the docs answer (content negotiation, caches). */
const FORWARDED = ['accept', 'accept-encoding', 'if-none-match', 'if-modified-since'] as const

/** Response headers the API sets itself rather than copying from the docs instance. */
const OWN_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date'])

export function registerDocs(app: FastifyInstance): void {
  let docs: Promise<FastifyInstance> | null = null
  const answer = async (req: FastifyRequest, reply: FastifyReply) => {
    docs ??= buildDocs().catch((err: unknown) => {
      docs = null // the next request tries again
      throw err
    })
    const headers: Record<string, string> = {}
    for (const name of FORWARDED) {
      const v = req.headers[name]
      if (typeof v === 'string') headers[name] = v
    }
    const res = await (await docs).inject({ method: req.method as 'GET' | 'HEAD', url: req.url, headers })
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && !OWN_HEADERS.has(name)) reply.header(name, value)
    return reply.code(res.statusCode).send(res.rawPayload)
  }
  app.get(DOCS_PREFIX, answer)
  app.get(`${DOCS_PREFIX}/*`, answer)
}

async function buildDocs(): Promise<FastifyInstance> {
  const [{ default: swagger }, { default: swaggerUi }, document] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui'), loadOpenApi()])
  const app = fastify({ logger: false })
  await app.register(swagger, { mode: 'static', specification: { document } })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
  await app.ready()
  return app
}
