// Command-line flags and their environment variables. Pure: argv + env in,
// Options (or a usage error) out; main.ts does the I/O.

import { isIP } from 'node:net'
import { usableCpus } from './cpus.ts'
import { parseDuration } from '../model/duration.ts'
import { constraintErrorText, parseConstraint } from '../model/constraint.ts'
import type { Constraint } from '../model/constraint.ts'
import { DEFAULT_DOCKER_ENDPOINT, DOCKER_FROM_ENV, parseEndpoint } from '../docker-api/endpoint.ts'
import { parseRegistryUrl, splitRegistryList } from '../kv/registry-url.ts'

export interface Options {
  apiHost: string
  apiPort: number
  /** Extra DNS names the admin API answers to (Host header); --api-host, repeatable. */
  apiHostNames: string[]
  /** Store URL; the file store is `file://<path>`. */
  store: string
  token: string | null
  tokenFile: string | null
  graceMs: number
  logLevel: string
  connectTimeoutMs: number
  headersTimeoutMs: number
  idleTimeoutMs: number
  responseTimeoutMs: number
  upstreamIdleMs: number
  /** Docker Engine API endpoint for container discovery; DOCKER_FROM_ENV (''): DOCKER_HOST, else the default socket; null: off. */
  docker: string | null
  /** Swarm service discovery (through the --docker endpoint, else DOCKER_HOST, else the default socket). */
  swarm: boolean
  /** Only containers matching this are discovered (--docker-constraint); null: all labelled ones. */
  dockerConstraint: Constraint | null
  /** Only services matching this are discovered (--swarm-constraint); null: all labelled ones. */
  swarmConstraint: Constraint | null
  /** Full resync period of the Docker/Swarm sources (a safety net under the events stream). */
  dockerResyncMs: number
  /** Service registries (--registry, repeatable): `[NAME=]consul://...`, `etcd://...`, `zk://...`. */
  registries: string[]
  /** CIDRs of proxies in front whose X-Forwarded-For / X-Real-IP / Forwarded are appended to (--trusted-proxies). */
  trustedProxies: string[]
  /** Descriptors kept for client and upstream connections; absent: a quarter of the limit, 64-4096. */
  fdReserve?: number
  /** Engine processes sharing the listening ports (SO_REUSEPORT); 1 = the engine runs in this process. */
  workers: number
  /** Where GET /metrics is also served without a token (a private scrape address); null: only on the admin API. */
  metrics: { host: string; port: number } | null
  /** Access log file, '-' for standard output; null: off. */
  accessLog: string | null
  /** Fraction of requests written to the access log. */
  accessLogSample: number
  /** Unix socket answering GET /ready for this process only (the container HEALTHCHECK); null: none. */
  healthSocket: string | null
  /** CA file (PEM) upstreams with Scheme `https` are verified against instead of the system's CAs; null: the system's. */
  upstreamCa: string | null
  /** The ACME directory certificates are ordered from (tls.Acme, balancer.tls labels); null (`off`): this instance never orders. */
  acmeDirectory: string | null
  /** PEM CA file trusted for the ACME directory's HTTPS (a test CA); null: the system's CAs. */
  acmeCa: string | null
  /** Contact for ACME groups that name none ('' for none). */
  acmeEmail: string
  /** First wait after a failed order; doubles with each failure in a row (up to 6 h). */
  acmeRetryMs: number
  help: boolean
  version: boolean
}

interface FlagSpec {
  flag: string
  env: string
  arg: string
  help: string
  defaultText: string
  /** The flag may stand alone (`--docker`, `--swarm`): it then means this value; a value is given as `--flag=VALUE`. */
  bare?: string
  set(o: Options, v: string): string | null
}

export const DEFAULT_CONFIG_PATH = 'balancer.json'

const duration = parseDuration

function durationFlag(key: 'graceMs' | 'connectTimeoutMs' | 'headersTimeoutMs' | 'idleTimeoutMs' | 'responseTimeoutMs' | 'upstreamIdleMs' | 'dockerResyncMs' | 'acmeRetryMs') {
  return (o: Options, v: string): string | null => {
    const ms = duration(v)
    if (ms === null) return `must be a duration like 30s, 500ms or 2m, got "${v}"`
    o[key] = ms
    return null
  }
}

export function splitHostPort(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim())
  if (m === null) return null
  const port = Number(m[3])
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null
  const host = m[1] ?? m[2] ?? ''
  return { host: host === '' ? '0.0.0.0' : host, port }
}

/** Letters, digits, `-`, `_`, dot-separated; no port, no trailing dot (`localhost.` is another name). */
const API_HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/

const FLAGS: FlagSpec[] = [
  {
    flag: '--api',
    env: 'BALANCER_API',
    arg: 'HOST:PORT',
    defaultText: '127.0.0.1:9123',
    help: 'Admin REST API address. Any non-loopback address requires a token.',
    set(o, v) {
      const hp = splitHostPort(v)
      if (hp === null) return `must be HOST:PORT, got "${v}"`
      o.apiHost = hp.host
      o.apiPort = hp.port
      return null
    },
  },
  {
    flag: '--api-host',
    env: 'BALANCER_API_HOST',
    arg: 'NAME',
    defaultText: 'none (localhost and IP addresses always work)',
    help: 'A DNS name the admin API is reached by (a reverse proxy or a name in front of it); repeatable, or comma separated. Requests with any other Host name are refused (DNS rebinding).',
    set(o, v) {
      // Flags and the environment add up: a name is only ever an allowance.
      for (const raw of v.split(',')) {
        const name = raw.trim().toLowerCase()
        if (name === '') continue
        if (!API_HOST_NAME.test(name) || name.length > 253) return `must be a DNS name without a port, got "${raw.trim()}"`
        if (!o.apiHostNames.includes(name)) o.apiHostNames.push(name)
      }
      return null
    },
  },
  {
    flag: '--config',
    env: 'BALANCER_CONFIG',
    arg: 'FILE',
    defaultText: `./${DEFAULT_CONFIG_PATH}`,
    help: 'JSON configuration file (the file store); created on the first write.',
    set(o, v) {
      if (v === '') return 'must be a file path'
      o.store = `file://${v}`
      return null
    },
  },
  {
    flag: '--store',
    env: 'BALANCER_STORE',
    arg: 'URL',
    defaultText: 'file://./balancer.json',
    help: 'Configuration store URL. file://PATH is the embedded default.',
    set(o, v) {
      if (!/^[a-z][a-z0-9+.-]*:\/\//.test(v)) return `must be a URL like file:///etc/balancer.json, got "${v}"`
      o.store = v
      return null
    },
  },
  {
    flag: '--token',
    env: 'BALANCER_TOKEN',
    arg: 'TOKEN',
    defaultText: 'none on loopback; generated otherwise',
    help: 'Bearer token the admin API requires (Authorization: Bearer TOKEN).',
    set(o, v) {
      if (v.length < 16) return 'must be at least 16 characters'
      o.token = v
      return null
    },
  },
  {
    flag: '--token-file',
    env: 'BALANCER_TOKEN_FILE',
    arg: 'FILE',
    defaultText: '<config>.token when generated',
    help: 'File holding the token; a generated token is written here (mode 0600).',
    set(o, v) {
      o.tokenFile = v
      return null
    },
  },
  { flag: '--grace', env: 'BALANCER_GRACE', arg: 'DURATION', defaultText: '30s', help: 'How long in-flight requests may take to finish on SIGTERM/SIGINT.', set: durationFlag('graceMs') },
  { flag: '--connect-timeout', env: 'BALANCER_CONNECT_TIMEOUT', arg: 'DURATION', defaultText: '5s', help: 'Upstream TCP connect timeout.', set: durationFlag('connectTimeoutMs') },
  {
    flag: '--header-timeout',
    env: 'BALANCER_HEADER_TIMEOUT',
    arg: 'DURATION',
    defaultText: '10s',
    help: 'A client must send a whole request head within this; also how long a new connection may wait for its first request.',
    set: durationFlag('headersTimeoutMs'),
  },
  { flag: '--idle-timeout', env: 'BALANCER_IDLE_TIMEOUT', arg: 'DURATION', defaultText: '60s', help: 'Idle client keep-alive connections are closed after this.', set: durationFlag('idleTimeoutMs') },
  {
    flag: '--response-timeout',
    env: 'BALANCER_RESPONSE_TIMEOUT',
    arg: 'DURATION',
    defaultText: '60s',
    help: 'An upstream must start its response within this (else 504).',
    set: durationFlag('responseTimeoutMs'),
  },
  { flag: '--upstream-idle', env: 'BALANCER_UPSTREAM_IDLE', arg: 'DURATION', defaultText: '30s', help: 'Pooled idle upstream connections are closed after this.', set: durationFlag('upstreamIdleMs') },
  {
    flag: '--acme-directory',
    env: 'BALANCER_ACME_DIRECTORY',
    arg: 'URL',
    defaultText: "Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory",
    help: 'The ACME directory certificates are ordered from (servers with tls.Acme, containers labelled balancer.tls=true). "off": this instance never orders; it still serves the certificates other instances order and answers their challenges.',
    set(o, v) {
      if (v.trim().toLowerCase() === 'off') {
        o.acmeDirectory = null
        return null
      }
      let u: URL
      try {
        u = new URL(v.trim())
      } catch {
        return `must be a URL, got ${JSON.stringify(v)}`
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:') return `must be an https:// URL, got ${JSON.stringify(v)}`
      o.acmeDirectory = u.toString()
      return null
    },
  },
  {
    flag: '--acme-ca',
    env: 'BALANCER_ACME_CA',
    arg: 'FILE',
    defaultText: "the system's CAs",
    help: "PEM CA certificates trusted for the ACME directory's HTTPS (a test CA such as Pebble's).",
    set(o, v) {
      if (v.trim() === '') return 'must be a file path'
      o.acmeCa = v.trim()
      return null
    },
  },
  {
    flag: '--acme-email',
    env: 'BALANCER_ACME_EMAIL',
    arg: 'ADDRESS',
    defaultText: 'none',
    help: 'Contact address of the ACME account for groups that name no Email.',
    set(o, v) {
      const t = v.trim()
      if (t !== '' && !/^[^\s@]+@[^\s@]+$/.test(t)) return `must be an e-mail address, got ${JSON.stringify(v)}`
      o.acmeEmail = t
      return null
    },
  },
  {
    flag: '--acme-retry',
    env: 'BALANCER_ACME_RETRY',
    arg: 'DURATION',
    defaultText: '1m',
    help: 'First wait after a failed ACME order; doubles with each failure in a row, up to 6h, with jitter.',
    set: durationFlag('acmeRetryMs'),
  },
  {
    flag: '--upstream-ca',
    env: 'BALANCER_UPSTREAM_CA',
    arg: 'FILE',
    defaultText: "the system's CAs",
    help: 'PEM CA certificates that upstreams with "Scheme": "https" are verified against, instead of the system\'s.',
    set(o, v) {
      if (v.trim() === '') return 'must be a file path'
      o.upstreamCa = v.trim()
      return null
    },
  },
  {
    flag: '--docker',
    env: 'BALANCER_DOCKER',
    arg: '[=ENDPOINT]',
    defaultText: `off; DOCKER_HOST, else ${DEFAULT_DOCKER_ENDPOINT}, when given alone`,
    bare: 'true',
    help: 'Discover labelled containers (balancer.enable=true) through the Docker Engine API: unix:///path, tcp://host:port (TLS from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH) or ssh://user@host.',
    set(o, v) {
      const t = v.trim().toLowerCase()
      if (t === 'false' || t === '0') {
        o.docker = null
        return null
      }
      if (t === 'true' || t === '1') {
        o.docker = DOCKER_FROM_ENV
        return null
      }
      const parsed = parseEndpoint(v.trim(), {})
      if ('error' in parsed) return parsed.error
      o.docker = parsed.text
      return null
    },
  },
  {
    flag: '--swarm',
    env: 'BALANCER_SWARM',
    arg: '',
    defaultText: 'off',
    bare: 'true',
    help: 'Discover Swarm services labelled balancer.enable=true (deploy.labels) and their tasks; needs a manager node.',
    set(o, v) {
      const t = v.trim().toLowerCase()
      if (t === 'true' || t === '1') o.swarm = true
      else if (t === 'false' || t === '0') o.swarm = false
      else return `takes no value (or true/false), got "${v}"`
      return null
    },
  },
  {
    flag: '--registry',
    env: 'BALANCER_REGISTRY',
    arg: 'URL',
    defaultText: 'none',
    help: 'Service registry to resolve {"Service": ...} upstreams from, repeatable: consul://HOST:PORT, etcd://HOST:PORT/PREFIX, zk://HOST:PORT/BASE; NAME=URL names it (env: comma separated).',
    set(o, v) {
      const errors: string[] = []
      for (const one of splitRegistryList(v)) {
        const r = parseRegistryUrl(one)
        if ('error' in r) errors.push(`${one}: ${r.error}`)
        else o.registries.push(one)
      }
      return errors.length > 0 ? errors.join('; ') : null
    },
  },
  {
    flag: '--docker-constraint',
    env: 'BALANCER_DOCKER_CONSTRAINT',
    arg: 'EXPR',
    defaultText: 'every labelled container',
    help: "Discover only containers matching EXPR, e.g. 'project:shop && label:tenant=payments' (label:K[=V], network:N, project:N, stack:N, name:GLOB; &&, ||, !, parentheses). Refused ones are listed in GET /status.",
    set(o, v) {
      const c = parseConstraint(v)
      if ('error' in c) return constraintErrorText(c)
      o.dockerConstraint = c
      return null
    },
  },
  {
    flag: '--swarm-constraint',
    env: 'BALANCER_SWARM_CONSTRAINT',
    arg: 'EXPR',
    defaultText: 'every labelled service',
    help: 'Discover only Swarm services matching EXPR (same language; stack:NAME is the stack).',
    set(o, v) {
      const c = parseConstraint(v)
      if ('error' in c) return constraintErrorText(c)
      o.swarmConstraint = c
      return null
    },
  },
  {
    flag: '--docker-resync',
    env: 'BALANCER_DOCKER_RESYNC',
    arg: 'DURATION',
    defaultText: '30s',
    help: 'Full Docker/Swarm listing period, a safety net under the events stream.',
    set: durationFlag('dockerResyncMs'),
  },
  {
    flag: '--trusted-proxies',
    env: 'BALANCER_TRUSTED_PROXIES',
    arg: 'CIDR,...',
    defaultText: 'none',
    help: 'Proxies in front of the balancer (IPv4/IPv6 CIDRs or addresses) whose X-Forwarded-For, X-Real-IP and Forwarded are kept and appended to; from any other client they are replaced.',
    set(o, v) {
      const out: string[] = []
      for (const raw of v.split(',')) {
        const c = raw.trim()
        if (c === '') continue
        const problem = cidrProblem(c)
        if (problem !== null) return problem
        out.push(c)
      }
      o.trustedProxies = out
      return null
    },
  },
  {
    flag: '--workers',
    env: 'BALANCER_WORKERS',
    arg: 'N',
    defaultText: 'the CPUs this process may use (cgroup CPU quota, rounded up)',
    help: 'Engine processes sharing the listening ports; 1 runs the engine inside the main process.',
    set(o, v) {
      const n = Number(v)
      if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < 1 || n > 256) return `must be an integer 1-256, got "${v}"`
      o.workers = n
      return null
    },
  },
  {
    flag: '--fd-reserve',
    env: 'BALANCER_FD_RESERVE',
    arg: 'N',
    defaultText: 'a quarter of the descriptor limit, 64-4096',
    help: 'File descriptors kept free for client and upstream connections: a change whose new listening addresses would leave fewer is refused.',
    set(o, v) {
      const n = Number(v)
      if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n > 1_000_000) return `must be an integer 0-1000000, got "${v}"`
      o.fdReserve = n
      return null
    },
  },
  {
    flag: '--metrics',
    env: 'BALANCER_METRICS',
    arg: 'HOST:PORT',
    defaultText: 'off (GET /metrics on the admin API only)',
    help: 'Also serve GET /metrics here, without a token: for a Prometheus scraper on a private network.',
    set(o, v) {
      const hp = splitHostPort(v)
      if (hp === null) return `must be HOST:PORT, got "${v}"`
      o.metrics = hp
      return null
    },
  },
  {
    flag: '--access-log',
    env: 'BALANCER_ACCESS_LOG',
    arg: 'FILE|-',
    defaultText: 'off',
    help: 'Write one JSON line per request to FILE (appended; reopened on SIGUSR1), or to standard output with -.',
    set(o, v) {
      if (v.trim() === '') return 'must be a file path or -'
      o.accessLog = v
      return null
    },
  },
  {
    flag: '--access-log-sample',
    env: 'BALANCER_ACCESS_LOG_SAMPLE',
    arg: 'FRACTION',
    defaultText: '1',
    help: 'Fraction of requests written to the access log, e.g. 0.1 for one in ten.',
    set(o, v) {
      const n = Number(v)
      if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) return `must be a number in (0, 1], got "${v}"`
      o.accessLogSample = n
      return null
    },
  },
  {
    flag: '--health-socket',
    env: 'BALANCER_HEALTH_SOCKET',
    arg: 'PATH',
    defaultText: 'none (the image: /dev/shm/balancer-ready.sock)',
    help: 'Unix socket answering GET /ready for this process only, for `balancer healthcheck` (the API port may be shared with another balancer starting beside this one).',
    set(o, v) {
      if (v === '') return 'must be a file path'
      o.healthSocket = v
      return null
    },
  },
  {
    flag: '--log-level',
    env: 'BALANCER_LOG_LEVEL',
    arg: 'LEVEL',
    defaultText: 'info',
    help: 'fatal, error, warn, info, debug or trace.',
    set(o, v) {
      if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(v)) return `must be one of fatal, error, warn, info, debug, trace, silent; got "${v}"`
      o.logLevel = v
      return null
    },
  },
]

export function defaults(): Options {
  return {
    apiHost: '127.0.0.1',
    apiPort: 9123,
    apiHostNames: [],
    store: `file://${DEFAULT_CONFIG_PATH}`,
    token: null,
    tokenFile: null,
    graceMs: 30_000,
    logLevel: 'info',
    connectTimeoutMs: 5000,
    headersTimeoutMs: 10_000,
    idleTimeoutMs: 60_000,
    responseTimeoutMs: 60_000,
    upstreamIdleMs: 30_000,
    docker: null,
    swarm: false,
    dockerConstraint: null,
    swarmConstraint: null,
    dockerResyncMs: 30_000,
    registries: [],
    trustedProxies: [],
    workers: usableCpus(),
    metrics: null,
    accessLog: null,
    accessLogSample: 1,
    healthSocket: null,
    upstreamCa: null,
    acmeDirectory: 'https://acme-v02.api.letsencrypt.org/directory',
    acmeCa: null,
    acmeEmail: '',
    acmeRetryMs: 60_000,
    help: false,
    version: false,
  }
}

/** Environment first, then flags (flags win). Returns every problem at once. */
export function parseOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Options | { errors: string[] } {
  const o = defaults()
  const errors: string[] = []
  for (const f of FLAGS) {
    const v = env[f.env]
    if (v === undefined || v === '') continue
    const err = f.set(o, v)
    if (err !== null) errors.push(`${f.env}: ${err}`)
  }
  // --registry repeats; given on the command line it replaces BALANCER_REGISTRY.
  let registryFlag = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    if (a === '--help' || a === '-h') {
      o.help = true
      continue
    }
    if (a === '--version') {
      o.version = true
      continue
    }
    const eq = a.indexOf('=')
    const name = eq > 0 ? a.slice(0, eq) : a
    const spec = FLAGS.find((f) => f.flag === name)
    if (spec === undefined) {
      errors.push(`${a}: unknown flag (see --help)`)
      continue
    }
    let v: string | undefined
    if (eq > 0) v = a.slice(eq + 1)
    else if (spec.bare !== undefined) v = spec.bare
    else {
      v = argv[i + 1]
      i++
    }
    if (v === undefined) {
      errors.push(`${name}: needs a value (${spec.arg})`)
      continue
    }
    if (spec.flag === '--registry' && !registryFlag) {
      registryFlag = true
      o.registries = []
    }
    const err = spec.set(o, v)
    if (err !== null) errors.push(`${name}: ${err}`)
  }
  return errors.length > 0 ? { errors } : o
}

/** null when c is an IPv4/IPv6 address or CIDR (`10.0.0.0/8`, `2001:db8::/32`). */
function cidrProblem(c: string): string | null {
  const slash = c.indexOf('/')
  const ip = slash === -1 ? c : c.slice(0, slash)
  const family = isIP(ip)
  const bits = slash === -1 ? (family === 6 ? 128 : 32) : /^[0-9]{1,3}$/.test(c.slice(slash + 1)) ? Number(c.slice(slash + 1)) : -1
  if (family === 0 || bits < 0 || bits > (family === 6 ? 128 : 32)) return `must be IP addresses or CIDRs like 10.0.0.0/8 or 2001:db8::/32, got "${c}"`
  return null
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

export function usage(): string {
  const lines = [
    'Usage: balancer [flags]',
    '',
    'Runs the load balancer: the admin REST API plus every listener the configuration defines.',
    'Every flag can also be given as an environment variable (flags win).',
    '',
  ]
  for (const f of FLAGS) {
    const shown = f.bare !== undefined ? `${f.flag}${f.arg}` : `${f.flag} ${f.arg}`
    lines.push(`  ${shown.padEnd(28)} ${f.help}`)
    lines.push(`  ${''.padEnd(28)} env ${f.env}; default ${f.defaultText}`)
  }
  lines.push('  --help                       This text.', '  --version                    Print the version.', '')
  lines.push('Signals: SIGTERM or SIGINT drains in-flight requests (up to --grace) and exits 0; a second one exits at once.')
  return lines.join('\n')
}
