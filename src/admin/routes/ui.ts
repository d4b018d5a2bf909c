// GET /ui/: the live dashboard, plain static files (no build step) read once
// at startup from src/admin/ui/. The page holds no data and is served
// without the token (like /docs); it asks for the token once, keeps it in
// sessionStorage for the tab, and sends it in the Authorization header of
// every API call and of the /events stream it reads with fetch(): never in a
// URL, never in a cookie.

import { readFileSync, readdirSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

export const UI_PREFIX = '/ui'
const DIR = new URL('../ui/', import.meta.url)

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}

export function uiRoutes(app: FastifyInstance): void {
  const files = new Map<string, { body: Buffer; type: string }>()
  for (const name of readdirSync(DIR)) {
    const ext = name.slice(name.lastIndexOf('.') + 1)
    const type = TYPES[ext]
    if (type !== undefined) files.set(name, { body: readFileSync(new URL(name, DIR)), type })
  }
  const headers = {
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    // Only this origin's own files and API; no inline script, no framing.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    'referrer-policy': 'no-referrer',
  }
  app.get(UI_PREFIX, (_req, reply) => reply.redirect(`${UI_PREFIX}/`))
  app.get(`${UI_PREFIX}/`, (_req, reply) => {
    const f = files.get('index.html')
    return reply
      .headers(headers)
      .type(f?.type ?? 'text/plain')
      .send(f?.body ?? '')
  })
  app.get(`${UI_PREFIX}/:file`, (req, reply) => {
    const f = files.get((req.params as { file: string }).file)
    if (f === undefined) return reply.callNotFound()
    return reply.headers(headers).type(f.type).send(f.body)
  })
}
