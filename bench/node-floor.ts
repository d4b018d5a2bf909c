// What Node alone costs: a server that answers every request by itself, on
// Node's own public sockets (node:net, node:tls with its default settings),
// with no proxying, no routing and no parsing beyond finding the end of each
// request head. It speaks just enough of the balancer's admin API for a
// side-by-side benchmark that configures its target with `POST /server` (the
// contract every balancer version keeps): `GET /` answers 200, `DELETE
// /server/...` 404, and `POST /server` with `{address, tls?}` opens that
// address, over TLS with the first of `tls.Certificates` when given.
//
//   node bench/node-floor.ts --api 127.0.0.1:9123
//
// The balancer measured against it runs the same Node, so the difference is
// what the balancer's own work costs per request; the difference between it
// and a C proxy is the part Node's sockets and OpenSSL binding take.
// HTTP/1.1 keep-alive and `Connection: close` only (no HTTP/2, no pipelining
// guarantees beyond answering every head in order). Asserts nothing.

import { readFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import type { Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'

const BODY = 'hello from backend\n'
const KEEP = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, 'latin1')
const CLOSE = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`, 'latin1')
const END = Buffer.from('\r\n\r\n', 'latin1')
const CLOSE_FIELD = /\r\nconnection:[ \t]*close/i

/** Answers each request head found on the socket; a head asking to close gets its answer, then the end. */
function answer(socket: Socket): void {
  let pending: Buffer | null = null
  socket.setNoDelay(true)
  socket.on('error', () => socket.destroy())
  socket.on('data', (chunk: Buffer) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk])
    for (;;) {
      const at = buf.indexOf(END)
      if (at < 0) break
      if (CLOSE_FIELD.test(buf.latin1Slice(0, at))) {
        socket.end(CLOSE)
        pending = null
        return
      }
      socket.write(KEEP)
      buf = buf.subarray(at + END.length)
    }
    pending = buf.length === 0 ? null : buf
  })
}

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':')
  const host = address.slice(0, at)
  return { host: host === '' ? '0.0.0.0' : host.replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) }
}

interface ServerBody {
  address?: unknown
  tls?: { Certificates?: Array<{ CertFile?: string; KeyFile?: string }> }
}

function open(body: ServerBody): string | null {
  if (typeof body.address !== 'string') return 'address: a string is required'
  const { host, port } = hostPort(body.address)
  const cert = body.tls?.Certificates?.[0]
  const server =
    cert?.CertFile !== undefined && cert.KeyFile !== undefined
      ? createTlsServer({ cert: readFileSync(cert.CertFile), key: readFileSync(cert.KeyFile), ALPNProtocols: ['http/1.1'] }, answer)
      : createTcpServer(answer)
  server.listen(port, host)
  return null
}

const args = process.argv.slice(2)
const api = hostPort(args[args.indexOf('--api') + 1] ?? '127.0.0.1:9123')
createHttpServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/server') {
      const problem = open(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as ServerBody)
      res.writeHead(problem === null ? 201 : 400, { 'content-type': 'application/json' }).end(JSON.stringify(problem === null ? {} : { message: problem }))
      return
    }
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"not found"}')
  })
}).listen(api.port, api.host)
