// A small Docker Engine API client on node:http / node:https: JSON GETs and
// the streaming /events endpoint. Every call takes an AbortSignal; nothing
// here retries or logs (the source that owns the loop does both).
//
// Why not dockerode: we need four GET endpoints and one stream, with an
// AbortSignal on each and a decoder we control (json-stream.ts); this is
// smaller than dockerode's dependency tree and has no ssh/native parts.

import http from 'node:http'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { Endpoint } from './endpoint.ts'
import { JsonObjectSplitter } from './json-stream.ts'

/** Engine API errors carry the HTTP status (404: no such container) and the daemon's message. */
export class DockerApiError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.name = 'DockerApiError'
    this.status = status
  }
}

/** The oldest API version whose fields we read (Engine 20.10 speaks 1.41). */
const MIN_API = [1, 41] as const
/** The newest we ask for: newer daemons answer older versions faithfully. */
const MAX_API = '1.45'

export interface DockerClientOptions {
  endpoint: Endpoint
  /** Bounds one JSON request (not the events stream). Default 10 s. */
  requestTimeoutMs?: number
}

export class DockerClient {
  readonly endpoint: Endpoint
  readonly #agent: http.Agent
  readonly #timeoutMs: number
  #prefix: string | null = null

  constructor(opts: DockerClientOptions) {
    this.endpoint = opts.endpoint
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000
    const ep = opts.endpoint
    this.#agent =
      ep.kind === 'tcp' && ep.tls !== null
        ? new https.Agent({
            keepAlive: true,
            keepAliveMsecs: 5000,
            ...(ep.tls.ca ? { ca: ep.tls.ca } : {}),
            ...(ep.tls.cert ? { cert: ep.tls.cert } : {}),
            ...(ep.tls.key ? { key: ep.tls.key } : {}),
            rejectUnauthorized: ep.tls.verify,
          })
        : new http.Agent({ keepAlive: true, keepAliveMsecs: 5000 })
  }

  /** GET a JSON document. Path without the version prefix, e.g. `/containers/json?all=0`. */
  async get<T>(path: string, signal: AbortSignal): Promise<T> {
    const prefix = await this.#version(signal)
    const res = await this.#request(`${prefix}${path}`, signal, this.#timeoutMs)
    const body = await readBody(res)
    if ((res.statusCode ?? 0) >= 300) throw apiError(res.statusCode ?? 0, path, body)
    return JSON.parse(body.toString('utf8')) as T
  }

  /**
   * Opens a streaming endpoint (/events) and calls onObject for every JSON
   * object it sends. Resolves once the stream is open (the daemon has
   * answered 200) with a promise that settles when it ends: rejects when the
   * daemon closes it or it breaks, resolves when the signal aborts.
   */
  async stream(path: string, signal: AbortSignal, onObject: (o: unknown) => void): Promise<{ ended: Promise<void> }> {
    const prefix = await this.#version(signal)
    const res = await this.#request(`${prefix}${path}`, signal, this.#timeoutMs)
    if ((res.statusCode ?? 0) >= 300) throw apiError(res.statusCode ?? 0, path, await readBody(res))
    const split = new JsonObjectSplitter()
    const ended = new Promise<void>((resolve, reject) => {
      const finish = (err: Error): void => {
        res.destroy()
        if (signal.aborted) resolve()
        else reject(err)
      }
      res.on('data', (chunk: Buffer) => {
        let objects: unknown[]
        try {
          objects = split.push(chunk)
        } catch (err) {
          finish(err as Error)
          return
        }
        for (const o of objects) onObject(o)
      })
      res.on('end', () => finish(new Error(`${path}: the daemon closed the stream`)))
      res.on('error', (err) => finish(err))
      res.on('aborted', () => finish(new Error(`${path}: the stream was cut`)))
      res.on('close', () => finish(new Error(`${path}: the stream was closed`)))
    })
    return { ended }
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent.destroy()
  }

  /** `/v1.xx`: the daemon's version (from /_ping) capped at MAX_API; refuses daemons older than MIN_API. */
  async #version(signal: AbortSignal): Promise<string> {
    if (this.#prefix !== null) return this.#prefix
    const res = await this.#request('/_ping', signal, this.#timeoutMs)
    await readBody(res)
    const v = String(res.headers['api-version'] ?? '')
    const m = /^(\d+)\.(\d+)$/.exec(v)
    if (m === null) throw new Error(`${this.endpoint.text} does not look like a Docker Engine API (no Api-Version header)`)
    const major = Number(m[1])
    const minor = Number(m[2])
    if (major < MIN_API[0] || (major === MIN_API[0] && minor < MIN_API[1])) {
      throw new Error(`Docker Engine API ${v} at ${this.endpoint.text} is too old; ${MIN_API.join('.')} or newer is needed (Docker 20.10+)`)
    }
    const cap = MAX_API.split('.').map(Number)
    const newer = major > (cap[0] ?? 1) || (major === cap[0] && minor > (cap[1] ?? 0))
    this.#prefix = `/v${newer ? MAX_API : v}`
    return this.#prefix
  }

  #request(path: string, signal: AbortSignal, timeoutMs: number): Promise<IncomingMessage> {
    const ep = this.endpoint
    const opts: http.RequestOptions = {
      method: 'GET',
      path,
      agent: this.#agent,
      signal,
      // TLS checks the daemon's certificate against the host we dialled (node takes the name from the Host header otherwise).
      ...(ep.kind === 'unix' ? { socketPath: ep.socketPath, headers: { host: 'docker', accept: 'application/json' } } : { host: ep.host, port: ep.port, headers: { accept: 'application/json' } }),
    }
    return new Promise((resolve, reject) => {
      const req = (ep.kind === 'tcp' && ep.tls !== null ? https : http).request(opts, (res) => {
        // The head arrived: a stream may stay quiet for hours from here on.
        req.setTimeout(0)
        resolve(res)
      })
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${ep.text}${path}: no answer within ${timeoutMs} ms`)))
      req.on('error', (err) => reject(describe(err, ep)))
      req.end()
    })
  }
}

function describe(err: Error, ep: Endpoint): Error {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ECONNREFUSED') return new Error(`cannot reach the Docker daemon at ${ep.text} (${code}): is it running?`, { cause: err })
  if (code === 'EACCES') return new Error(`no permission to open ${ep.text}: run as root or in the docker group`, { cause: err })
  return err
}

function apiError(status: number, path: string, body: Buffer): DockerApiError {
  let message = body.toString('utf8').trim()
  try {
    message = (JSON.parse(message) as { message?: string }).message ?? message
  } catch {
    // Not JSON: keep the text.
  }
  return new DockerApiError(status, `${path}: ${status} ${message}`)
}

async function readBody(res: IncomingMessage, limit = 64 << 20): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of res) {
    size += (chunk as Buffer).length
    if (size > limit) {
      res.destroy()
      throw new Error(`response larger than ${limit} bytes`)
    }
    parts.push(chunk as Buffer)
  }
  return Buffer.concat(parts)
}
