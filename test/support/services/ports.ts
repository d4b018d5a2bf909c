// Free loopback ports for servers the tests start. A port the OS handed out a
// moment ago (listen on 0, read it, close) is free unless another process
// grabs it in between; services that need several ports take them at once.

import { createServer } from 'node:net'
import type { Server } from 'node:net'

function listenZero(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => resolve(s))
  })
}

/** n distinct free ports on 127.0.0.1 (all held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, listenZero))
  const ports = servers.map((s) => {
    const a = s.address()
    return typeof a === 'object' && a !== null ? a.port : 0
  })
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  return ports
}
