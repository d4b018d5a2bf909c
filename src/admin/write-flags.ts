// `?force=true` on an API write: store the change even if this instance
// cannot listen on an address it adds (control/listen-check.ts), for a
// shared store whose other instances can. Read by commit() (context.ts)
// through the request's async context, opened in onRequest as the write log
// does (write-log.ts), so route handlers need not pass it down.

import { AsyncLocalStorage } from 'node:async_hooks'
import type { FastifyInstance } from 'fastify'
import { validationError } from '../model/errors.ts'

interface WriteFlags {
  force: boolean
}

const current = new AsyncLocalStorage<WriteFlags>()

/** True when the write being handled asked for ?force=true. */
export function forced(): boolean {
  return current.getStore()?.force ?? false
}

export function registerWriteFlags(app: FastifyInstance): void {
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return done()
    const v = (req.query as Record<string, unknown> | undefined)?.force
    if (v === undefined || v === 'false') return done()
    if (v !== 'true') return done(validationError([{ path: 'query.force', message: `must be true or false, got ${JSON.stringify(v)}` }]))
    current.run({ force: true }, done)
  })
}
