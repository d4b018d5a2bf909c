// Consul's HTTP API through the `consul` client (the calls the balancer
// makes: KV reads with blocking queries, KV writes with cas/acquire/release,
// /v1/txn, sessions, the catalog and health endpoints of the registry
// source). Shared by store/consul.ts, store/shared-consul.ts and
// sources/consul/, which may not import each other.
//
// What this wrapper adds to the library, and why:
// - AbortSignal: the library cancels through an EventEmitter `ctx`
//   ('cancel'); a signal is bridged to one per call.
// - X-Consul-Index: blocking queries need the index of every answer; the
//   library returns it only with `ctx.includeResponse` (the raw response).
// - 404 of a KV read is "no such key" (the library resolves undefined for
//   it, and for an empty listing), 409 of /v1/txn is a failed check with its
//   Errors, not a failure: both come back as values, every other non-2xx as
//   one error naming the status and Consul's text.
// - One deadline per call over the whole exchange (the library's `timeout`),
//   longer for a blocking query by its wait plus Consul's jitter (wait/16).

import { EventEmitter } from 'node:events'
import type { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import Consul from 'consul'
import type { HostPort, TlsFiles } from './endpoint.ts'

export interface ConsulClientOptions {
  host: HostPort
  /** Sent as X-Consul-Token; never logged. */
  token: string | null
  /** HTTPS when non-null. */
  tls: TlsFiles | null
}

/** One KV entry, its Value decoded from base64 (null for an empty value). */
export interface ConsulKv {
  Key: string
  Value: string | null
  CreateIndex: number
  ModifyIndex: number
  LockIndex: number
  Flags: number
}

/** A blocking query: wait up to waitMs for the index to move past `index`. */
export interface Blocking {
  index: number
  waitMs: number
}

/** An answer and the X-Consul-Index it came with (0 when absent or malformed). */
export interface Indexed<T> {
  body: T
  index: number
}

/** One operation of /v1/txn, as Consul's API spells it. */
export interface TxnOp {
  KV: { Verb: 'cas' | 'delete-cas'; Key: string; Value?: string; Index: number }
}

export type TxnResult = { ok: true; results: Array<{ KV?: { ModifyIndex?: number } }> } | { ok: false; errors: Array<{ What?: string }> }

/** A non-2xx answer Consul gave (other than the ones returned as values). */
export class ConsulHttpError extends Error {
  readonly status: number
  /** The answer's body as the library decoded it (JSON, or text). */
  readonly body: unknown
  constructor(status: number, message: string, body: unknown) {
    super(message)
    this.name = 'ConsulHttpError'
    this.status = status
    this.body = body
  }
}

interface RawResponse {
  statusCode?: number
  headers: Record<string, string | string[] | undefined>
  body?: unknown
}

export class ConsulClient {
  readonly #consul: Consul
  readonly #agent: HttpAgent | HttpsAgent

  constructor(o: ConsulClientOptions) {
    const tls = o.tls
    this.#agent =
      tls === null
        ? // node:http comes from the builtin table, not an import: an ES import of it runs its export getters, and WebSocket's loads undici (16 MiB; test/architecture.test.ts).
          new (process.getBuiltinModule('node:http').Agent)({ keepAlive: true })
        : new HttpsAgent({
            keepAlive: true,
            ...(tls.ca === null ? {} : { ca: tls.ca }),
            ...(tls.cert === null ? {} : { cert: tls.cert }),
            ...(tls.key === null ? {} : { key: tls.key }),
          })
    const host = o.host.host.includes(':') ? `[${o.host.host}]` : o.host.host
    this.#consul = new Consul({
      host,
      port: o.host.port,
      secure: tls !== null,
      agent: this.#agent,
      ...(o.token === null ? {} : { defaults: { token: o.token } }),
    })
  }

  /** GET /v1/kv/<key>?recurse; a missing key is an empty list. */
  async kvList(key: string, blocking: Blocking | null, timeoutMs: number, signal?: AbortSignal): Promise<Indexed<ConsulKv[]>> {
    const [res, body] = await this.#call(timeoutMs, blocking, signal, (opts) => this.#consul.kv.get({ key, recurse: true, ...opts }))
    return { body: Array.isArray(body) ? (body as ConsulKv[]) : [], index: indexOf(res) }
  }

  /** GET /v1/kv/<key>; null when it does not exist. */
  async kvGet(key: string, timeoutMs: number): Promise<ConsulKv | null> {
    const [, body] = await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.kv.get({ key, ...opts }))
    return (body as ConsulKv | undefined) ?? null
  }

  /** PUT /v1/kv/<key> with `?cas=`, `?acquire=` or `?release=`; false when Consul refused it (the check failed, the lock is held). */
  async kvSet(key: string, value: string, check: { cas?: number; acquire?: string; release?: string }, timeoutMs: number): Promise<Indexed<boolean>> {
    const [res, body] = await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.kv.set({ key, value, ...check, ...opts }))
    return { body: body === true || body === 'true', index: indexOf(res) }
  }

  /** DELETE /v1/kv/<key>, with `?cas=` when given; false when the check failed. */
  async kvDelete(key: string, cas: number | undefined, timeoutMs: number): Promise<boolean> {
    const [, body] = await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.kv.del({ key, ...(cas === undefined ? {} : { cas }), ...opts }))
    return body === true || body === 'true'
  }

  /** PUT /v1/txn; a 409 (a check failed, nothing applied) comes back as its Errors. */
  async txn(ops: TxnOp[], timeoutMs: number): Promise<TxnResult> {
    try {
      // The library sends the operations as given; its typings describe another shape ({verb, key}) than Consul's ({KV: {Verb, Key}}).
      const create = this.#consul.transaction.create.bind(this.#consul.transaction) as unknown as (ops: TxnOp[], opts: CallOptions) => Promise<unknown>
      const [, body] = await this.#call(timeoutMs, null, undefined, (opts) => create(ops, opts))
      return { ok: true, results: (body as { Results?: Array<{ KV?: { ModifyIndex?: number } }> | null } | undefined)?.Results ?? [] }
    } catch (err) {
      if (err instanceof ConsulHttpError && err.status === 409 && err.body !== null && typeof err.body === 'object') {
        return { ok: false, errors: (err.body as { Errors?: Array<{ What?: string }> | null }).Errors ?? [] }
      }
      throw err
    }
  }

  /** PUT /v1/session/create; the new session's ID. */
  async sessionCreate(spec: { name: string; ttl: string; behavior: 'delete' | 'release'; lockdelay: string }, timeoutMs: number): Promise<string> {
    const [, body] = await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.session.create({ ...spec, ...opts }))
    return (body as { ID: string }).ID
  }

  /** PUT /v1/session/renew/<id>; false when Consul no longer knows the session (404: invalidated). */
  async sessionRenew(id: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.session.renew({ id, ...opts }))
      return true
    } catch (err) {
      if (err instanceof ConsulHttpError && err.status === 404) return false
      throw err
    }
  }

  /** PUT /v1/session/destroy/<id> */
  async sessionDestroy(id: string, timeoutMs: number): Promise<void> {
    await this.#call(timeoutMs, null, undefined, (opts) => this.#consul.session.destroy({ id, ...opts }))
  }

  /** GET /v1/health/service/<name>?passing */
  async healthService(service: string, blocking: Blocking | null, timeoutMs: number, signal: AbortSignal): Promise<Indexed<unknown>> {
    const [res, body] = await this.#call(timeoutMs, blocking, signal, (opts) => this.#consul.health.service({ service, passing: true, ...opts }))
    return { body, index: indexOf(res) }
  }

  /** GET /v1/catalog/services, with Consul's `filter` when given. */
  async catalogServices(filter: string | null, blocking: Blocking | null, timeoutMs: number, signal: AbortSignal): Promise<Indexed<unknown>> {
    const [res, body] = await this.#call(timeoutMs, blocking, signal, (opts) => this.#consul.catalog.service.list({ ...(filter === null ? {} : { filter }), ...opts }))
    return { body, index: indexOf(res) }
  }

  close(): void {
    this.#consul.destroy()
  }

  /** One call: the deadline, the blocking parameters, the signal bridged to the library's ctx, the raw response kept for its index. */
  async #call(timeoutMs: number, blocking: Blocking | null, signal: AbortSignal | undefined, fn: (opts: CallOptions) => Promise<unknown>): Promise<[RawResponse, unknown]> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true, canceled: false })
    const cancel = (): void => {
      ctx.canceled = true
      ctx.emit('cancel')
    }
    if (signal?.aborted) throw signal.reason
    signal?.addEventListener('abort', cancel, { once: true })
    try {
      const out = (await fn({ ctx, timeout: timeoutMs, ...(blocking === null ? {} : { index: blocking.index, wait: `${blocking.waitMs}ms` }) })) as [RawResponse, unknown] | undefined
      // A 404 of a KV read resolves with the response alone.
      return [out?.[0] ?? { headers: {} }, out?.[1]]
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      throw translate(err)
    } finally {
      signal?.removeEventListener('abort', cancel)
    }
  }
}

interface CallOptions {
  ctx: EventEmitter & { includeResponse: boolean }
  timeout: number
  index?: number
  wait?: string
}

/** X-Consul-Index as a number; 0 when absent or malformed. */
function indexOf(res: RawResponse): number {
  const v = Number(res.headers['x-consul-index'])
  return Number.isSafeInteger(v) && v > 0 ? v : 0
}

/** The library's response errors carry the raw response; its own (timeouts, aborts, sockets) a message. */
function translate(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err))
  const res = (err as Error & { response?: RawResponse }).response
  if (res?.statusCode === undefined) return err
  const status = res.statusCode
  const body = res.body
  const text = (Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : body === undefined || body === null ? '' : JSON.stringify(body)).trim().slice(0, 200)
  const message = status === 403 ? `HTTP 403 ${text || 'permission denied'} (check BALANCER_CONSUL_TOKEN)` : `HTTP ${status}${text === '' ? '' : ` ${text}`}`
  return new ConsulHttpError(status, message, body)
}
