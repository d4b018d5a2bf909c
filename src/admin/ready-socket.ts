// GET /ready on a Unix socket, for the container HEALTHCHECK (`balancer
// healthcheck`, --health-socket). The admin API's TCP port is bound with
// SO_REUSEPORT so that a new balancer can start beside the old one on the
// host's network (a Swarm `order: start-first` update): a probe sent there
// may be answered by either process. This socket, in a directory private to
// the container (/dev/shm), answers for this process only.

import type { Server } from 'node:http'
import { lstatSync, unlinkSync } from 'node:fs'
import type { ReadyState } from '../control/readiness.ts'
import { READY_PATH } from './ready.ts'

/** Listens on `path` (a stale socket left by a killed process is replaced). */
export function listenReadySocket(path: string, ready: () => ReadyState): Promise<Server> {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path)
  } catch {
    // Nothing there: the usual case.
  }
  // Not a static import: an ES import of node:http runs its export getters and loads undici (16 MiB; test/architecture.test.ts).
  const server = process.getBuiltinModule('node:http').createServer((req, res) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || req.url !== READY_PATH) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"E_NOT_FOUND","message":"only GET /ready is served here"}')
      return
    }
    const state = ready()
    res.writeHead(state === 'ready' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ state }))
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}
