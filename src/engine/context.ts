// State shared by every connection of one Engine: options, the upstream
// registry, a coarse clock and global counters. One per Engine (tests run
// several engines in one process), passed to each connection record once.

import { BlockList, isIPv6 } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { AccessLogSink, EngineOptions } from './types.ts'
import { Registry } from './upstream/registry.ts'
import { Verifier } from './rules/verifier.ts'

/** Request-line limit (RFC 9112 §3 recommends supporting at least 8000 octets). */
const REQUEST_LINE_MAX = 8192

export class EngineCtx {
  readonly opts: EngineOptions
  readonly registry = new Registry()
  /** Longest request line accepted (414 beyond): 8 KiB, or maxHeaderBytes if smaller. */
  readonly lineMax: number
  /**
   * Epoch ms, refreshed at the start of every socket event that sets or checks
   * a deadline and by the sweep; saves a clock read per deadline.
   */
  now = Date.now()
  /** Requests between a parsed head and the end of their response. */
  inFlight = 0
  /** Requests routed so far, by client protocol (HTTP/1.x, and HTTP/2 streams). */
  requestsH1 = 0
  requestsH2 = 0
  /** shutdown() has begun: responses carry `connection: close`, nothing goes back to the pool. */
  closing = false
  /** opts.accessLog, or null: per request, one null check when off. */
  readonly accessLog: AccessLogSink | null

  /**
   * How many engines enforce the routes' rate limits together: live
   * instances sharing the store times worker processes per instance
   * (Engine.setLimitShare). Each takes Average / limitShare.
   */
  limitShare = 1

  /** BasicAuth password checks, off the serving thread (started at the first check). */
  readonly verifier = new Verifier()

  /** opts.trustedProxies as a lookup; null when none is trusted (the default). */
  readonly trusted: BlockList | null
  /** ACME http-01 answers by token, whole responses rendered once, keep-alive and closing (empty: no challenge pending, nothing is looked up). */
  acmeTokens = new Map<string, { keep: Buffer; close: Buffer }>()
  /** ACME tls-alpn-01 certificates by host name (lower-case): native contexts (raw TLS sockets). */
  acmeAlpn = new Map<string, object>()
  /** The same as SecureContexts (tls.TLSSocket, the fallback). */
  acmeAlpnSc = new Map<string, SecureContext>()
  #upstreamTls: SecureContext | null = null

  /**
   * Client context for upstreams with Scheme `https`: the system's CAs, or
   * opts.upstreamCa's. Built on first use (node:tls and OpenSSL's state load
   * then: a worker with no https upstream never loads them).
   */
  get upstreamTls(): SecureContext {
    this.#upstreamTls ??= process.getBuiltinModule('node:tls').createSecureContext(this.opts.upstreamCa === '' ? {} : { ca: this.opts.upstreamCa })
    return this.#upstreamTls
  }

  /** upstreamTls as a function, made once: what a connection to an https upstream is opened with. */
  readonly tlsContextOf = (): SecureContext => this.upstreamTls

  constructor(opts: EngineOptions) {
    this.opts = opts
    this.lineMax = Math.min(REQUEST_LINE_MAX, opts.maxHeaderBytes)
    this.accessLog = opts.accessLog ?? null
    this.trusted = trustedList(opts.trustedProxies)
  }

  /** Once per connection: is this peer a trusted proxy? */
  readonly isTrusted = (ip: string): boolean => {
    return this.trusted !== null && this.trusted.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4')
  }
}

/** CIDRs were checked by the caller (cli/options.ts); a malformed one here is a programming error. */
function trustedList(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null
  const list = new BlockList()
  for (const c of cidrs) {
    const slash = c.indexOf('/')
    const ip = slash === -1 ? c : c.slice(0, slash)
    const type = isIPv6(ip) ? 'ipv6' : 'ipv4'
    const bits = slash === -1 ? (type === 'ipv6' ? 128 : 32) : Number(c.slice(slash + 1))
    list.addSubnet(ip, bits, type)
  }
  return list
}
