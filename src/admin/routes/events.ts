// GET /events: the dashboard's live feed as Server-Sent Events, behind the
// token like every API route. Browsers read it with fetch() so the token
// travels in the Authorization header (EventSource cannot send one); scripts
// can `curl -N -H "Authorization: Bearer $TOKEN" localhost:9123/events`.
//
// Events: `hello` (the current state, each server's 15-minute history and the
// timeline), then `state` once a second (and right after a change is applied)
// with each server's newest plot point, and `timeline` for every change as it
// happens. A comment line every 15 s keeps idle proxies from closing it.
//
// PUT and DELETE /upstream/{target}-{port}/drain take an upstream out of
// rotation and put it back, in every route that has it: the operator's
// incident action, also what the dashboard's Drain button calls.

import type { FastifyInstance } from 'fastify'
import type { ServerResponse } from 'node:http'
import { targetKey } from '../../model/address.ts'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import type { LiveEvent, LiveView } from '../../observability/live-view.ts'
import { parseMemberKey } from '../addressing.ts'
import { recordAction } from '../write-log.ts'

const KEEPALIVE_MS = 15_000

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

export function eventRoutes(app: FastifyInstance, live: LiveView | undefined, drain: ((key: string, on: boolean) => boolean) | undefined): void {
  const open = new Set<ServerResponse>()
  app.addHook('preClose', (done) => {
    for (const res of open) res.end()
    open.clear()
    done()
  })

  app.get('/events', (req, reply) => {
    if (live === undefined) throw new BalancerError(ErrorCode.NotFound, 'this API runs without a data plane: no live events')
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    })
    open.add(res)
    res.write(frame('hello', live.snapshot()))
    const unsubscribe = live.subscribe((e: LiveEvent) => {
      res.write(e.type === 'state' ? frame('state', { state: e.state, points: e.points }) : frame('timeline', e.entry))
    })
    const ping = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS)
    const done = (): void => {
      clearInterval(ping)
      unsubscribe()
      open.delete(res)
    }
    req.raw.once('close', done)
    res.once('close', done)
  })

  const setDrain = (on: boolean) => async (req: { params: unknown }) => {
    const { member } = req.params as { member: string }
    const ref = parseMemberKey(member)
    const key = targetKey(ref.target, ref.port)
    if (drain === undefined || !drain(key, on))
      throw new BalancerError(ErrorCode.NotFound, `no upstream ${key} is being served`, [{ path: 'path.member', message: `${member} is in no applied route` }])
    live?.record('drain', on ? 'warn' : 'info', on ? `${key} drained by an operator` : `${key} back in service`)
    recordAction(on ? `upstream ${key} drained` : `upstream ${key} back in service`)
    void live?.once().catch(() => undefined)
    return { upstream: key, drained: on }
  }
  app.put('/upstream/:member/drain', setDrain(true))
  app.delete('/upstream/:member/drain', setDrain(false))
}
