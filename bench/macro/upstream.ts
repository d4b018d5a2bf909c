// The benchmark's upstream: a minimal keep-alive HTTP/1.1 server on node:net
// that answers every request head with the same 19-byte body (pipelining
// included), or with a body of --body-bytes N bytes. It reads no request
// bodies (the benchmark sends GETs only) and parses nothing but the end of
// each head, so it costs far less CPU per request than the proxy under test.
//
//   node bench/macro/upstream.ts [--body-bytes N] PORT [PORT...]   (0 picks a free port)
// Prints one line `{"ports":[...]}` once listening.

import { createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'

const args = process.argv.slice(2)
let body = Buffer.from('hello from backend\n', 'latin1')
if (args[0] === '--body-bytes') {
  const n = Number(args[1])
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`upstream: --body-bytes must be a whole number of bytes, got ${JSON.stringify(args[1] ?? '')}\n`)
    process.exit(2)
  }
  body = Buffer.alloc(n, 'x')
  args.splice(0, 2)
}
const RESPONSE = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body])
const CR = 13
const LF = 10

/** Counts complete request heads (CRLF CRLF), carrying a partial terminator over chunk boundaries. */
function serve(sock: Socket): void {
  let state = 0 // how many bytes of \r\n\r\n matched so far
  sock.setNoDelay(true)
  sock.on('data', (chunk: Buffer) => {
    let heads = 0
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]
      if (c === CR) state = state === 2 ? 3 : 1
      else if (c === LF && (state === 1 || state === 3)) {
        if (state === 3) {
          heads++
          state = 0
        } else state = 2
      } else state = 0
    }
    if (heads === 1) sock.write(RESPONSE)
    else if (heads > 1) sock.write(Buffer.concat(Array.from({ length: heads }, () => RESPONSE)))
  })
  sock.on('error', () => sock.destroy())
}

const ports = args.map(Number)
const bound: number[] = []
for (const p of ports.length > 0 ? ports : [0]) {
  const server = createServer({ noDelay: true }, serve)
  await new Promise<void>((resolve) => server.listen({ port: p, host: '127.0.0.1', backlog: 4096 }, resolve))
  bound.push((server.address() as AddressInfo).port)
}
process.stdout.write(`${JSON.stringify({ ports: bound })}\n`)
