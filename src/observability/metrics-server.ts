// `--metrics HOST:PORT`: GET /metrics and nothing else, without a token, for
// a Prometheus scraper on a private network. A plain node:http server: it
// has one route and holds no configuration, so it needs none of the admin
// API's machinery (and none of its token).

import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { METRICS_CONTENT_TYPE } from './metrics.ts'

/**
 * misdirected(host header): why a request's Host is refused (the admin API's
 * DNS rebinding check, admin/host-check.ts), or null; a refused request gets
 * 421 and nothing else, as on the API.
 */
export async function startMetricsServer(
  host: string,
  port: number,
  render: () => Promise<string>,
  onError: (err: Error) => void,
  misdirected: (host: string | undefined) => string | null = () => null,
): Promise<{ server: Server; port: number }> {
  // Not a static import: an ES import of node:http runs its export getters and loads undici (16 MiB; test/architecture.test.ts).
  const server = process.getBuiltinModule('node:http').createServer((req, res) => {
    const refusal = misdirected(req.headers.host)
    if (refusal !== null) {
      res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8' }).end(`${refusal}\n`)
      return
    }
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics is served here\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('GET /metrics\n')
      return
    }
    render().then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        onError(err instanceof Error ? err : new Error(String(err)))
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n')
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // SO_REUSEPORT, like the API and the listeners: a new balancer starting
    // beside the old one on the host's network (a Swarm start-first update)
    // binds the metrics port too.
    server.listen({ port, host, reusePort: process.platform === 'linux' }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return { server, port: (server.address() as AddressInfo).port }
}
