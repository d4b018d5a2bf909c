// A small client for the parts of Consul's HTTP API the balancer uses: the
// KV endpoint (recursive reads, blocking queries) and /v1/txn for the store,
// the catalog and health endpoints for the registry source. node:http(s)
// rather than fetch, so TLS can take the operator's CA and client certificate
// and every request has a hard deadline. Shared by store/consul.ts and
// sources/consul/, which may not import each other.

import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { HostPort, TlsFiles } from './endpoint.ts'

export interface ConsulHttpOptions {
  host: HostPort
  /** Sent as X-Consul-Token; never logged. */
  token: string | null
  /** HTTPS when non-null. */
  tls: TlsFiles | null
}

export interface ConsulResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One KV entry as Consul returns it (Value is base64, null for an empty value). */
export interface ConsulKv {
  Key: string
  Value: string | null
  CreateIndex: number
  ModifyIndex: number
  LockIndex: number
  Flags: number
}

export class ConsulHttp {
  readonly #o: ConsulHttpOptions
  readonly #agent: HttpAgent | HttpsAgent

  constructor(o: ConsulHttpOptions) {
    this.#o = o
    const tls = o.tls
    this.#agent =
      tls === null
        ? new HttpAgent({ keepAlive: true })
        : new HttpsAgent({
            keepAlive: true,
            ...(tls.ca === null ? {} : { ca: tls.ca }),
            ...(tls.cert === null ? {} : { cert: tls.cert }),
            ...(tls.key === null ? {} : { key: tls.key }),
          })
  }

  /** Rejects on a network failure or when timeoutMs passes; any HTTP status resolves. */
  request(method: string, path: string, body: string | null, timeoutMs: number, signal?: AbortSignal): Promise<ConsulResponse> {
    const send = this.#o.tls === null ? httpRequest : httpsRequest
    const headers: Record<string, string> = {}
    if (this.#o.token !== null) headers['x-consul-token'] = this.#o.token
    if (body !== null) headers['content-type'] = 'application/json'
    return new Promise((resolve, reject) => {
      const req = send({ host: this.#o.host.host, port: this.#o.host.port, method, path, headers, agent: this.#agent, timeout: timeoutMs, ...(signal === undefined ? {} : { signal }) }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      })
      // Bounds the whole exchange, not only socket inactivity.
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      req.on('close', () => clearTimeout(timer))
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end(body ?? undefined)
    })
  }

  close(): void {
    this.#agent.destroy()
  }
}

/** `/v1/kv/<key>` with every segment percent-encoded (keys may hold `%`). */
export function kvPath(key: string): string {
  return `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`
}

/** X-Consul-Index as a number; 0 when absent or malformed. */
export function consulIndex(headers: IncomingHttpHeaders): number {
  const v = Number(headers['x-consul-index'])
  return Number.isSafeInteger(v) && v > 0 ? v : 0
}

export function describeFailure(res: ConsulResponse): string {
  const text = res.body.trim().slice(0, 200)
  if (res.status === 403) return `HTTP 403 ${text || 'permission denied'} (check BALANCER_CONSUL_TOKEN)`
  return `HTTP ${res.status}${text === '' ? '' : ` ${text}`}`
}
