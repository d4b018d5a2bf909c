// The API's documentation. openapi.yaml at the repository root is the one
// description of the API (paths, parameters, request and response schemas);
// it is served as written (@fastify/swagger static mode) with Swagger UI at
// /docs, the document itself at /docs/json and /docs/yaml. Handlers do not
// validate against it: the model's normalizers accept the seed's loose forms
// and name every problem, which a JSON-schema pass could not.

import { readFile } from 'node:fs/promises'
import swagger from '@fastify/swagger'
import type { StaticDocumentSpec } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { parse } from 'yaml'
import { DOCS_PREFIX } from './access.ts'

export const OPENAPI_URL = new URL('../../openapi.yaml', import.meta.url)

export type OpenApiDocument = StaticDocumentSpec['document']

/** Reads and parses openapi.yaml; checks only that it looks like an OpenAPI document. */
export async function loadOpenApi(): Promise<OpenApiDocument> {
  const doc: unknown = parse(await readFile(OPENAPI_URL, 'utf8'))
  if (typeof doc !== 'object' || doc === null || !('openapi' in doc) || !('paths' in doc)) {
    throw new Error(`${OPENAPI_URL.pathname} is not an OpenAPI document`)
  }
  return doc as OpenApiDocument
}

export async function registerDocs(app: FastifyInstance): Promise<void> {
  const document = await loadOpenApi()
  await app.register(swagger, { mode: 'static', specification: { document } })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
}
