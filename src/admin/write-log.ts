// Accountable writes: every API write that the store accepted is logged once,
// at info, with the client address, method, path (without the query),
// resulting store revision and a short summary of what changed
// (change-summary.ts). Nothing of the request's headers is logged, so the
// bearer token never reaches a log line.
//
// commit() (context.ts) is the one way the API writes; it records the
// configuration before and after into the record of the request it runs
// for. That record is found through the request's async context, opened in
// onRequest around the rest of the request's hooks and handler (the pattern
// of @fastify/request-context), so route handlers need not pass the request
// down.

import { AsyncLocalStorage } from 'node:async_hooks'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../model/types.ts'
import { summarizeChange } from './change-summary.ts'

interface WriteRecord {
  before: Config | null
  after: Config | null
  revision: string | null
  /** Writes of live state, not configuration (an upstream drained by hand): said in words by the route. */
  actions: string[]
}

const current = new AsyncLocalStorage<WriteRecord>()
const records = new WeakMap<FastifyRequest, WriteRecord>()

/** A write that changes live state rather than the configuration, e.g. `upstream 10.0.0.5:80 drained`. */
export function recordAction(summary: string): void {
  current.getStore()?.actions.push(summary)
}

/** Called by commit() with the configuration the accepted mutation saw and produced. */
export function recordWrite(before: Config, after: Config, revision: string): void {
  const r = current.getStore()
  if (r === undefined) return
  // A store that retries a mutation (compare-and-set) calls it again: the last call is the one written.
  r.before = before
  r.after = after
  r.revision = revision
}

export function registerWriteLog(app: FastifyInstance, log: Logger | null): void {
  app.addHook('onRequest', (req, _reply, done) => {
    if (log === null || req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return done()
    const r: WriteRecord = { before: null, after: null, revision: null, actions: [] }
    records.set(req, r)
    current.run(r, done)
  })
  app.addHook('onResponse', async (req, reply) => {
    const r = records.get(req)
    if (log === null || r === undefined) return
    const status = reply.statusCode
    if (status < 200 || status > 299) return
    const where = { client: req.ip, method: req.method, path: req.url.split('?')[0], status }
    if (r.before !== null && r.after !== null) log.info({ ...where, revision: r.revision, changes: summarizeChange(r.before, r.after) }, 'configuration written through the API')
    else if (r.actions.length > 0) log.info({ ...where, changes: r.actions }, 'live state changed through the API')
  })
}
