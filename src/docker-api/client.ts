// The Docker Engine API through dockerode: the listings and inspections
// discovery reads and the /events stream. Every call takes an AbortSignal and
// has a deadline; nothing here retries or logs (the source that owns the
// loop does both).
//
// dockerode (its docker-modem) does the transport: unix sockets and tcp://
// with the TLS material the docker CLI uses. Our code is kept for three
// parts only:
// - The ssh:// transport (ssh.ts, which says why): an http.Agent handed to
//   dockerode, whose connections are `docker system dial-stdio` over SSH.
// - The /events decoder (json-stream.ts). dockerode hands the stream over
//   raw; docker-modem's followProgress decodes each chunk with toString()
//   (a multi-byte character cut across two chunks is mangled), needs a
//   newline after every object, has no bound on a line, and its JSON.parse of
//   a bad line throws out of a 'data' handler, an uncaught exception
//   (test/sources/json-stream.test.ts pins each of these).
// - The endpoint (endpoint.ts). docker-modem reads DOCKER_HOST itself only
//   from process.env and has no --docker flag; it turns tcp:// into plain
//   HTTP unless DOCKER_TLS_VERIFY is exactly "1" or the port is 2376, and
//   with DOCKER_TLS_VERIFY unset it still checks the daemon's certificate
//   against the system CAs (the docker CLI then does not). So the endpoint
//   is parsed here and every field docker-modem would read from the
//   environment is given explicitly.

import type http from 'node:http'
import https from 'node:https'
import { userInfo } from 'node:os'
import Docker from 'dockerode'
import type { Endpoint } from './endpoint.ts'
import { JsonObjectSplitter } from './json-stream.ts'
import { sshAgent } from './ssh.ts'
import type { ContainerInspect, ContainerSummary, SwarmService, SwarmTask } from './types.ts'

// node:http comes from the builtin table, not an import: an ES import of it runs its export getters, and WebSocket's loads undici (16 MiB; test/architecture.test.ts).
const HttpAgent = process.getBuiltinModule('node:http').Agent

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

/** What dockerode 5 takes that its published types (@types/dockerode 4) do not list yet. */
type DockerOptions = Docker.DockerOptions & { agent?: http.Agent }
interface Dockerode5 {
  version(opts: { abortSignal: AbortSignal }): Promise<{ ApiVersion?: unknown }>
  modem: { version?: string }
}

/** `filters` of a listing: name -> accepted values, as the Engine API takes them. */
export type Filters = Record<string, string[]>

export interface DockerClientOptions {
  endpoint: Endpoint
  /** Bounds one JSON request, and the opening of the events stream. Default 10 s. */
  requestTimeoutMs?: number
}

export class DockerClient {
  readonly endpoint: Endpoint
  readonly #docker: Docker
  readonly #agent: http.Agent
  readonly #timeoutMs: number
  #versioned = false

  constructor(opts: DockerClientOptions) {
    this.endpoint = opts.endpoint
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000
    const ep = opts.endpoint
    // Every field docker-modem reads from the environment is set here, so DOCKER_HOST and friends in
    // process.env cannot override the endpoint the operator gave.
    const none = { socketPath: undefined, host: undefined, port: undefined, username: undefined, ca: undefined, cert: undefined, key: undefined, timeout: undefined, sshOptions: {} }
    if (ep.kind === 'unix') {
      this.#agent = new HttpAgent({ keepAlive: true, keepAliveMsecs: 5000 })
      this.#docker = new Docker(modemOptions({ ...none, socketPath: ep.socketPath, protocol: 'http', agent: this.#agent }))
    } else if (ep.kind === 'ssh') {
      this.#agent = sshAgent({ host: ep.host, port: ep.port, user: ep.user ?? userInfo().username, agent: ep.agent, knownHosts: ep.knownHosts, readyTimeoutMs: this.#timeoutMs })
      this.#docker = new Docker(modemOptions({ ...none, host: ep.host, port: ep.port, protocol: 'http', agent: this.#agent }))
    } else if (ep.tls === null) {
      this.#agent = new HttpAgent({ keepAlive: true, keepAliveMsecs: 5000 })
      this.#docker = new Docker(modemOptions({ ...none, host: ep.host, port: ep.port, protocol: 'http', agent: this.#agent }))
    } else {
      const tls = { ca: ep.tls.ca, cert: ep.tls.cert, key: ep.tls.key }
      // The request repeats ca/cert/key (docker-modem sets them on every request); the agent adds the one
      // option docker-modem has no way to pass: whether to check the daemon's certificate at all.
      this.#agent = new https.Agent({ keepAlive: true, keepAliveMsecs: 5000, ...defined(tls), rejectUnauthorized: ep.tls.verify })
      this.#docker = new Docker(modemOptions({ ...none, ...tls, host: ep.host, port: ep.port, protocol: 'https', agent: this.#agent }))
    }
  }

  /** GET /containers/json */
  listContainers(filters: Filters, signal: AbortSignal): Promise<ContainerSummary[]> {
    return this.#call('/containers/json', signal, (abortSignal) => this.#docker.listContainers({ filters, abortSignal })) as Promise<ContainerSummary[]>
  }

  /** GET /containers/{id}/json; null when the daemon does not know it (404). */
  async inspectContainer(id: string, signal: AbortSignal): Promise<ContainerInspect | null> {
    try {
      return (await this.#call(`/containers/${id}/json`, signal, (abortSignal) => this.#docker.getContainer(id).inspect({ abortSignal }))) as ContainerInspect
    } catch (err) {
      if (err instanceof DockerApiError && err.status === 404) return null
      throw err
    }
  }

  /** GET /services */
  listServices(filters: Filters, signal: AbortSignal): Promise<SwarmService[]> {
    return this.#call('/services', signal, (abortSignal) => this.#docker.listServices({ filters, abortSignal })) as Promise<SwarmService[]>
  }

  /** GET /services/{id}; null when it is gone (404). */
  async inspectService(id: string, signal: AbortSignal): Promise<SwarmService | null> {
    try {
      return (await this.#call(`/services/${id}`, signal, (abortSignal) => this.#docker.getService(id).inspect({ abortSignal }))) as SwarmService
    } catch (err) {
      if (err instanceof DockerApiError && err.status === 404) return null
      throw err
    }
  }

  /** GET /tasks */
  listTasks(filters: Filters, signal: AbortSignal): Promise<SwarmTask[]> {
    return this.#call('/tasks', signal, (abortSignal) => this.#docker.listTasks({ filters, abortSignal })) as Promise<SwarmTask[]>
  }

  /**
   * Opens GET /events and calls onObject for every JSON object it sends.
   * Resolves once the stream is open (the daemon has answered 200) with a
   * promise that settles when it ends: rejects when the daemon closes it or
   * it breaks, resolves when the signal aborts.
   */
  async events(filters: Filters, signal: AbortSignal, onObject: (o: unknown) => void): Promise<{ ended: Promise<void> }> {
    const res = (await this.#call('/events', signal, (abortSignal) => this.#docker.getEvents({ filters, abortSignal }))) as NodeJS.ReadableStream & { destroy(): void }
    const split = new JsonObjectSplitter()
    const ended = new Promise<void>((resolve, reject) => {
      let settled = false
      const finish = (err: Error): void => {
        if (settled) return
        settled = true
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
      res.on('end', () => finish(new Error('/events: the daemon closed the stream')))
      res.on('error', (err: Error) => finish(err))
      res.on('close', () => finish(new Error('/events: the stream was closed')))
    })
    return { ended }
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent.destroy()
  }

  /** One call under the caller's signal and this client's deadline (until the answer's head, for a stream). */
  async #call<T>(what: string, signal: AbortSignal, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), this.#timeoutMs)
    const both = AbortSignal.any([signal, deadline.signal])
    try {
      if (!this.#versioned) await this.#negotiate(both)
      return await fn(both)
    } catch (err) {
      if (deadline.signal.aborted && !signal.aborted) throw new Error(`${this.endpoint.text}${what}: no answer within ${this.#timeoutMs} ms`, { cause: err })
      throw translate(err, what, this.endpoint)
    } finally {
      clearTimeout(timer)
    }
  }

  /** Pins the API version: the daemon's (GET /version) capped at MAX_API; refuses daemons older than MIN_API. */
  async #negotiate(signal: AbortSignal): Promise<void> {
    const d = this.#docker as unknown as Dockerode5
    const info = await d.version({ abortSignal: signal })
    const v = String(info.ApiVersion ?? '')
    const m = /^(\d+)\.(\d+)$/.exec(v)
    if (m === null) throw new Error(`${this.endpoint.text} does not look like a Docker Engine API (no ApiVersion in /version)`)
    const major = Number(m[1])
    const minor = Number(m[2])
    if (major < MIN_API[0] || (major === MIN_API[0] && minor < MIN_API[1])) {
      throw new Error(`Docker Engine API ${v} at ${this.endpoint.text} is too old; ${MIN_API.join('.')} or newer is needed (Docker 20.10+)`)
    }
    const cap = MAX_API.split('.').map(Number)
    const newer = major > (cap[0] ?? 1) || (major === cap[0] && minor > (cap[1] ?? 0))
    d.modem.version = `v${newer ? MAX_API : v}`
    this.#versioned = true
  }
}

/** Typed as dockerode 5 takes its options (see DockerOptions). */
function modemOptions(o: DockerOptions): Docker.DockerOptions {
  return o
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** docker-modem's errors carry statusCode and the daemon's JSON; connection errors an errno code. */
function translate(err: unknown, what: string, ep: Endpoint): Error {
  if (!(err instanceof Error)) return new Error(String(err))
  const e = err as Error & { statusCode?: number; json?: unknown; code?: string }
  if (typeof e.statusCode === 'number') {
    const body = e.json as { message?: unknown } | string | null | undefined
    const message = typeof body === 'object' && body !== null && typeof body.message === 'string' ? body.message : typeof body === 'string' ? body.trim() : e.message
    return new DockerApiError(e.statusCode, `${what}: ${e.statusCode} ${message}`)
  }
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') return new Error(`cannot reach the Docker daemon at ${ep.text} (${e.code}): is it running?`, { cause: err })
  if (e.code === 'EACCES') return new Error(`no permission to open ${ep.text}: run as root or in the docker group`, { cause: err })
  return err
}
