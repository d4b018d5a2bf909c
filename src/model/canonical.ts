// The one canonical written form of the model, and hashes of it. Fields are
// emitted in the order types.ts declares them, every field present, whatever
// order or extra properties the objects in memory have.

import { createHash } from 'node:crypto'
import type { Config, Filter, Member, Policy, Route, Server, Tls, ValidConfig } from './types.ts'
import { isServiceRef } from './types.ts'
import { rulesOf } from './rules-of.ts'

function upstream(u: Member): Member {
  if (isServiceRef(u)) return { Service: u.Service, Registry: u.Registry, Tags: [...u.Tags], Priority: u.Priority, Weight: u.Weight, ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }) }
  return {
    Target: u.Target,
    Port: u.Port,
    Priority: u.Priority,
    Weight: u.Weight,
    ...(u.Protocol === undefined ? {} : { Protocol: u.Protocol }),
    ...(u.Scheme === 'https' ? { Scheme: 'https' as const } : {}),
  }
}

function filter(f: Filter): Filter {
  return { Hosts: [...f.Hosts], Schemes: [...f.Schemes], PathPrefix: f.PathPrefix }
}

/** The policy groups the object sets, whole, fields in declared order; absent ones stay absent. */
export function policyOf(p: Policy, owner: 'server' | 'route'): Policy {
  const out: Policy = {}
  const h = p.health
  // A server's null health is "none", the same as absent (see policy.ts).
  if (h === null && owner === 'route') out.health = null
  else if (h != null) out.health = { Type: h.Type, Path: h.Path, Method: h.Method, Host: h.Host, Statuses: [...h.Statuses], Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall }
  if (p.passive !== undefined) out.passive = { Failures: p.passive.Failures, Ejection: p.passive.Ejection, MaxEjection: p.passive.MaxEjection, EjectOn5xx: p.passive.EjectOn5xx }
  if (p.retry !== undefined) out.retry = { Statuses: [...p.retry.Statuses], Attempts: p.retry.Attempts, Budget: p.retry.Budget }
  if (p.limits !== undefined) out.limits = { MaxConnections: p.limits.MaxConnections, MaxPending: p.limits.MaxPending }
  const hsts = p.hsts
  if (hsts === null && owner === 'route') out.hsts = null
  else if (hsts != null) out.hsts = { MaxAge: hsts.MaxAge, IncludeSubDomains: hsts.IncludeSubDomains, Preload: hsts.Preload }
  // Not a policy group (no defaults, no sub-resource), but copied wherever the groups are.
  const d = p.discovery
  if (d !== undefined) out.discovery = typeof d === 'string' ? d : { Constraint: d.Constraint }
  return { ...out, ...rulesOf(p, owner) }
}

/** A copy of a server's `tls` group, fields in declared order. */
export function tlsOf(t: Tls): Tls {
  const out: Tls = { Certificates: t.Certificates.map((c) => ({ CertFile: c.CertFile, KeyFile: c.KeyFile })) }
  if (t.Acme !== undefined) out.Acme = { Hosts: [...t.Acme.Hosts], Email: t.Acme.Email, Challenge: t.Acme.Challenge }
  if (t.Alpn !== undefined) out.Alpn = [...t.Alpn]
  return out
}

function route(r: Route): Route {
  return { name: r.name, filter: filter(r.filter), upstreams: r.upstreams.map(upstream), fallbacks: r.fallbacks.map(upstream), ...policyOf(r, 'route') }
}

/** One server in the canonical form (fields in declared order, every field present). */
export function canonicalServer(s: Server): Server {
  return {
    address: s.address,
    ...(s.tls === undefined ? {} : { tls: tlsOf(s.tls) }),
    ...(s.Protocols === undefined ? {} : { Protocols: [...s.Protocols] }),
    filter: filter(s.filter),
    upstreams: s.upstreams.map(upstream),
    fallbacks: s.fallbacks.map(upstream),
    ...policyOf(s, 'server'),
    routes: s.routes.map(route),
  }
}

/** `{"servers":[...]}`, 2-space indented, trailing newline: the file store's and GET /'s bytes. */
export function serializeConfig(cfg: Config): string {
  return `${JSON.stringify({ servers: cfg.servers.map(canonicalServer) }, null, 2)}\n`
}

/**
 * serializeConfig of a ValidConfig, as the UTF-8 parts of the file in order
 * (concatenated, the same bytes as serializeConfig). Each server's part is
 * remembered: a ValidConfig and its servers are never mutated (types.ts), so
 * after a write that changed one server of 1,000 the file store indents and
 * encodes one server again, and writes the parts with one writev(2) without
 * joining them into one 10 MiB string per write (the garbage of those
 * strings dominated a write at that size).
 */
export function validConfigParts(cfg: ValidConfig): readonly Buffer[] {
  if (cfg.servers.length === 0) return [Buffer.from(serializeConfig(cfg))]
  const out: Buffer[] = [FILE_HEAD]
  cfg.servers.forEach((s, i) => {
    if (i > 0) out.push(FILE_SEP)
    out.push(serverPart(s))
  })
  out.push(FILE_TAIL)
  return out
}

/** The canonical text of one server as it stands in the file (4 spaces deeper), remembered by object. */
function serverPart(s: Server): Buffer {
  let part = partOf.get(s)
  if (part === undefined) {
    // JSON strings hold no raw newline: every line of the server's text is one line of the file, 4 spaces deeper.
    part = Buffer.from(`    ${JSON.stringify(canonicalServer(s), null, 2).replaceAll('\n', '\n    ')}`)
    partOf.set(s, part)
  }
  return part
}

/** Whether two configurations have the same canonical text, comparing only the servers that are not the same objects. */
export function sameValidConfig(a: ValidConfig, b: ValidConfig): boolean {
  if (a === b) return true
  if (a.servers.length !== b.servers.length) return false
  for (let i = 0; i < a.servers.length; i++) {
    const x = a.servers[i] as Server
    const y = b.servers[i] as Server
    if (x !== y && !serverPart(x).equals(serverPart(y))) return false
  }
  return true
}

/** The whole file's bytes in one Buffer (GET /), remembered with the configuration. */
export function validConfigBytes(cfg: ValidConfig): Buffer {
  let bytes = fileOf.get(cfg)
  if (bytes === undefined) {
    bytes = Buffer.concat(validConfigParts(cfg))
    fileOf.set(cfg, bytes)
  }
  return bytes
}

/** serializeConfig of a ValidConfig, from the remembered parts of its servers. */
export function serializeValidConfig(cfg: ValidConfig): string {
  return validConfigBytes(cfg).toString('utf8')
}

const FILE_HEAD = Buffer.from('{\n  "servers": [\n')
const FILE_SEP = Buffer.from(',\n')
const FILE_TAIL = Buffer.from('\n  ]\n}\n')
const partOf = new WeakMap<Server, Buffer>()
const fileOf = new WeakMap<ValidConfig, Buffer>()

/**
 * sha256 (base64url, first 16 chars) of the value's canonical JSON: object
 * keys sorted, so equal data gives an equal hash whatever the key order. Used
 * for ETags and store revisions; 96 bits make an accidental collision moot.
 * A configuration (an object whose only key is `servers`, a list) is hashed
 * as the list of its servers' hashes (configsHash), so that equal
 * configurations hash equal whether or not they are ValidConfigs.
 */
export function configHash(x: unknown): string {
  if (typeof x !== 'object' || x === null) return sha(stableJson(x))
  const known = hashOf.get(x)
  if (known !== undefined) return known
  if (isConfigShape(x)) return serversHash(x.servers, false)
  return sha(stableJson(x))
}

/**
 * configHash of a ValidConfig, remembered with the hash of each of its
 * servers. A ValidConfig and its servers are never mutated (types.ts), so a
 * config that differs from the last one by one server is hashed by hashing
 * that one server and the list of 1,000 short server hashes: a write does
 * not serialise or hash the other 999 (store revisions, GET / and If-Match
 * all ask).
 */
export function validConfigHash(cfg: ValidConfig): string {
  let h = hashOf.get(cfg)
  if (h === undefined) {
    h = serversHash(cfg.servers, true)
    hashOf.set(cfg, h)
  }
  return h
}

function isConfigShape(x: object): x is { servers: readonly unknown[] } {
  const keys = Object.keys(x)
  return keys.length === 1 && keys[0] === 'servers' && Array.isArray((x as { servers: unknown }).servers)
}

/** `remember`: the servers are a ValidConfig's (never mutated), so each one's hash may be kept by object. */
function serversHash(servers: readonly unknown[], remember: boolean): string {
  const parts = servers.map((s) => {
    if (typeof s !== 'object' || s === null) return sha(stableJson(s))
    let h = hashOf.get(s)
    if (h === undefined) {
      h = sha(stableJson(s))
      if (remember) hashOf.set(s, h)
    }
    return h
  })
  return sha(`servers:${parts.join(',')}`)
}

const hashOf = new WeakMap<object, string>()

function sha(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16)
}

export function sameConfig(a: Config, b: Config): boolean {
  return serializeConfig(a) === serializeConfig(b)
}

/** JSON.stringify with sorted keys; undefined members are dropped as JSON does. */
function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map((v: unknown) => (v === undefined ? 'null' : stableJson(v))).join(',')}]`
  if (typeof x === 'object' && x !== null) {
    const obj = x as Record<string, unknown>
    const parts: string[] = []
    for (const k of Object.keys(obj).sort()) {
      if (obj[k] !== undefined) parts.push(`${JSON.stringify(k)}:${stableJson(obj[k])}`)
    }
    return `{${parts.join(',')}}`
  }
  return JSON.stringify(x) ?? 'null'
}
