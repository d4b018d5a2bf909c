// `balancer healthcheck [--health-socket PATH] [--api HOST:PORT]`: exits 0
// when the balancer answers GET /ready with 200, 1 otherwise (starting,
// draining, not running, no answer within 8 s). The image's HEALTHCHECK runs
// it, so the image needs no curl. It asks the --health-socket Unix socket
// (BALANCER_HEALTH_SOCKET) when one is set: that one answers for this
// container's balancer only, where the API port may be shared with another
// balancer starting beside it. Otherwise it asks the API at --api or
// BALANCER_API, as the balancer itself reads them; a wildcard host (0.0.0.0,
// ::) is asked on loopback.
// It loads only node:http (and a constant): Docker runs it every few
// seconds, so its start-up is most of its cost.

import { READY_PATH } from '../admin/ready.ts'

// Below the image's HEALTHCHECK --timeout (10 s), so a slow answer is reported
// with its reason; well above a busy balancer's answer time, as three failed
// checks in a row make Swarm replace a serving task.
const TIMEOUT_MS = 8000

function apiAddress(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): { host: string; port: number } | null {
  const v = flag(argv, '--api') ?? env.BALANCER_API ?? '127.0.0.1:9123'
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim())
  const port = Number(m?.[3])
  if (m === null || port < 1 || port > 65535) return null
  const given = m[1] ?? m[2] ?? ''
  const host = given === '' || given === '0.0.0.0' ? '127.0.0.1' : given === '::' ? '::1' : given
  return { host, port }
}

function flag(argv: readonly string[], name: string): string | undefined {
  let v: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    if (a === name) v = argv[i + 1] ?? ''
    else if (a.startsWith(`${name}=`)) v = a.slice(name.length + 1)
  }
  return v
}

/** Resolves with the exit status and the line to print. */
export function healthcheck(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<{ code: number; line: string }> {
  const socketPath = flag(argv, '--health-socket') ?? env.BALANCER_HEALTH_SOCKET ?? ''
  let target: { socketPath: string } | { host: string; port: number }
  let hostHeader: string
  let where: string
  if (socketPath !== '') {
    target = { socketPath }
    hostHeader = 'localhost'
    where = socketPath
  } else {
    const api = apiAddress(argv, env)
    if (api === null) return Promise.resolve({ code: 1, line: 'healthcheck: --api / BALANCER_API must be HOST:PORT' })
    target = api
    hostHeader = api.host.includes(':') ? `[${api.host}]:${api.port}` : `${api.host}:${api.port}`
    where = hostHeader
  }
  return new Promise((resolve) => {
    // node:http comes from the builtin table, not an import: an ES import of it runs its export getters, and WebSocket's loads undici (16 MiB; test/architecture.test.ts).
    const req = process.getBuiltinModule('node:http').request({ ...target, path: READY_PATH, headers: { host: hostHeader }, agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ code: res.statusCode === 200 ? 0 : 1, line: `${res.statusCode} ${body.trim()}` }))
      res.on('error', (err) => resolve({ code: 1, line: `healthcheck: ${err.message}` }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)))
    req.on('error', (err) => resolve({ code: 1, line: `healthcheck: ${where}: ${(err as NodeJS.ErrnoException).code ?? err.message}` }))
    req.end()
  })
}
