// Clients for engine and end-to-end tests: a one-shot raw TCP exchange, a
// persistent raw connection that reads responses one by one, and node:http
// requests (optionally over a keep-alive agent whose sockets are watched).

import { Agent, request as httpReq } from 'node:http'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { ConnectionOptions } from 'node:tls'
import { parseResponse } from './responses.ts'
import type { ParsedResponse } from './responses.ts'

export interface RawResult {
  buf: Buffer
  text: string
  /** The proxy ended or reset the connection before our timeout. */
  closed: boolean
  /** The connection ended with an error (ECONNRESET, EPIPE) rather than a clean FIN. */
  reset: boolean
  timedOut: boolean
}

export interface RawRequestOptions {
  /** Upper bound on the whole exchange; then the socket is destroyed. Default 3000. */
  timeoutMs?: number
  host?: string
}

/** Opens a TCP connection, writes `bytes`, collects everything until the peer closes or the timeout. */
export function rawRequest(port: number, bytes: string | Buffer, opts: RawRequestOptions = {}): Promise<RawResult> {
  const timeoutMs = opts.timeoutMs ?? 3000
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let reset = false
    let timedOut = false
    const sock = connect({ port, host: opts.host ?? '127.0.0.1' })
    const timer = setTimeout(() => {
      timedOut = true
      sock.destroy()
    }, timeoutMs)
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('error', () => {
      reset = true
    })
    sock.on('close', () => {
      clearTimeout(timer)
      const buf = Buffer.concat(chunks)
      resolve({ buf, text: buf.toString('latin1'), closed: !timedOut, reset, timedOut })
    })
    sock.on('connect', () => sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes))
  })
}

/** A persistent raw connection: write bytes, then read the responses one at a time. */
/**
 * Sends `bytes` and the FIN at once, then reads until the proxy's FIN: the
 * head (up to the blank line) and the body. `pauseEvery`: the reader stops
 * for 5 ms after each that many bytes (a client slower than the proxy).
 */
export function sendAndReadToEnd(port: number, bytes: string, pauseEvery = 0): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1' })
    const chunks: Buffer[] = []
    let got = 0
    sock.on('data', (d: Buffer) => {
      chunks.push(d)
      got += d.length
      if (pauseEvery > 0 && got % pauseEvery < d.length) {
        sock.pause()
        setTimeout(() => sock.resume(), 5)
      }
    })
    sock.on('error', reject)
    sock.on('end', () => {
      sock.destroy()
      const all = Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) return reject(new Error(`no complete head before the FIN: ${JSON.stringify(all.toString('latin1', 0, 200))}`))
      resolve({ head: all.toString('latin1', 0, end), body: all.subarray(end + 4) })
    })
    sock.end(bytes)
  })
}

export class RawClient {
  readonly sock: Socket
  #buf: Buffer = Buffer.alloc(0)
  #eof = false
  #waiters: Array<() => void> = []
  /** Total bytes received, consumed or not. */
  received = 0

  private constructor(sock: Socket) {
    this.sock = sock
    sock.on('data', (d: Buffer) => {
      this.received += d.length
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake()
    })
    sock.on('error', () => {})
    sock.on('close', () => {
      this.#eof = true
      this.#wake()
    })
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((res, rej) => {
      const s = connect({ port, host })
      s.once('error', rej)
      s.once('connect', () => {
        s.off('error', rej)
        res(new RawClient(s))
      })
    })
  }

  /** A TLS connection (tls.connect options: ca, servername, ALPNProtocols, session, ...), resolved after the handshake. */
  static connectTls(port: number, opts: ConnectionOptions = {}, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((res, rej) => {
      const s = tlsConnect({ port, host, ...opts })
      s.once('error', rej)
      s.once('secureConnect', () => {
        s.off('error', rej)
        res(new RawClient(s))
      })
    })
  }

  get closed(): boolean {
    return this.#eof
  }

  /** Bytes received and not yet returned by read(). */
  get buffered(): Buffer {
    return this.#buf
  }

  write(bytes: string | Buffer): void {
    this.sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
  }

  /** Next response on the connection (a 1xx counts as one). `head`: it answers a HEAD request. */
  async read(opts: { head?: boolean; timeoutMs?: number } = {}): Promise<ParsedResponse> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000)
    for (;;) {
      const step = parseResponse(this.#buf, 0, opts.head === true, this.#eof)
      if ('res' in step) {
        this.#buf = this.#buf.subarray(step.next)
        return step.res
      }
      if ('error' in step) throw new Error(`bad response: ${step.error}: ${JSON.stringify(this.#buf.toString('latin1', 0, 200))}`)
      if (this.#eof) throw new Error(`connection closed before a complete response; got ${JSON.stringify(this.#buf.toString('latin1', 0, 200))}`)
      if (!(await this.#wait(deadline))) throw new Error(`no complete response within the deadline; got ${JSON.stringify(this.#buf.toString('latin1', 0, 200))}`)
    }
  }

  /** Resolves true once the peer has closed, false at the deadline. */
  async whenClosed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.#eof) if (!(await this.#wait(deadline))) return false
    return true
  }

  destroy(): void {
    this.sock.destroy()
  }

  #wait(deadline: number): Promise<boolean> {
    const left = deadline - Date.now()
    if (left <= 0) return Promise.resolve(false)
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1)
        res(false)
      }, left)
      const w = (): void => {
        clearTimeout(t)
        res(true)
      }
      this.#waiters.push(w)
    })
  }

  #wake(): void {
    const ws = this.#waiters
    this.#waiters = []
    for (const w of ws) w()
  }
}

export { parseResponses, statusCodes } from './responses.ts'

export interface HttpResult {
  status: number
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  trailers: NodeJS.Dict<string>
  body: Buffer
  text: string
}

export interface HttpOptions {
  method?: string
  body?: string | Buffer
  agent?: Agent
  /** Loopback address to connect to. Default 127.0.0.1. */
  host?: string
  /** Upper bound for the whole exchange. Default 10000. */
  timeoutMs?: number
}

/** A request with node:http; rejects on a socket error or at the timeout. */
export function httpRequest(port: number, path: string, headers: OutgoingHttpHeaders = {}, opts: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpReq({
      host: opts.host ?? '127.0.0.1',
      port,
      path,
      method: opts.method ?? 'GET',
      headers,
      agent: opts.agent ?? false,
    })
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${opts.timeoutMs ?? 10000} ms`)), opts.timeoutMs ?? 10000)
    req.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
      res.on('end', () => {
        clearTimeout(timer)
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, trailers: res.trailers, body, text: body.toString('utf8') })
      })
    })
    req.end(opts.body)
  })
}

export function httpGet(port: number, path: string, headers: OutgoingHttpHeaders = {}, opts: HttpOptions = {}): Promise<HttpResult> {
  return httpRequest(port, path, headers, { ...opts, method: 'GET' })
}

/**
 * A keep-alive agent with one socket that counts the sockets it opened and
 * how many of them were closed: a proxy that keeps client connections open
 * shows sockets === 1 and closes === 0.
 */
export function watchedAgent(): { agent: Agent; sockets(): number; closes(): number; destroy(): void } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const seen = new Set<Socket>()
  let closes = 0
  const orig = agent.createConnection.bind(agent)
  agent.createConnection = ((...args: Parameters<Agent['createConnection']>) => {
    const s = orig(...args) as Socket
    seen.add(s)
    s.on('close', () => closes++)
    return s
  }) as Agent['createConnection']
  return { agent, sockets: () => seen.size, closes: () => closes, destroy: () => agent.destroy() }
}
