// An upstream HTTP server in its own process, so that tests can kill it
// (SIGKILL), freeze it (SIGSTOP: the kernel still accepts connections, nothing
// answers) and start it again on the same port. Run by test/support/child-upstream.ts:
//   node http-child.ts <name> <port>
// Prints `PORT <n>` once listening. GET /healthz answers the health status;
// every other path answers `status` with the name as body; both after `delay` ms.
// GET /__set?health=503&status=200&delay=0 changes those (for the test, not proxied).

import { createServer } from 'node:http'

const name = process.argv[2] ?? 'child'
const port = Number(process.argv[3] ?? '0')
const mode = { health: 200, status: 200, delay: 0 }

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x')
  if (url.pathname === '/__set') {
    for (const k of ['health', 'status', 'delay'] as const) {
      const v = url.searchParams.get(k)
      if (v !== null) mode[k] = Number(v)
    }
    res.end('ok')
    return
  }
  req.resume()
  req.on('end', () => {
    const health = url.pathname === '/healthz'
    const answer = (): void => {
      res.statusCode = health ? mode.health : mode.status
      res.end(health ? `${name} health` : name)
    }
    if (mode.delay > 0) setTimeout(answer, mode.delay)
    else answer()
  })
})
server.keepAliveTimeout = 30_000
server.listen(port, '127.0.0.1', () => {
  const a = server.address()
  process.stdout.write(`PORT ${typeof a === 'object' && a !== null ? a.port : 0}\n`)
})
