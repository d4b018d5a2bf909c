// Free loopback ports for servers the tests start. A port the OS handed out a
// moment ago (listen on 0, read it, close) is free unless another process
// grabs it in between; services that need several ports take them at once,
// and no port is handed out twice in one process.

import { createServer } from 'node:net'
import type { Server } from 'node:net'

function listenZero(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => resolve(s))
  })
}

/**
 * Ports this process has handed out already: a port released by one call is
 * free to the OS, which may hand it out again to the next call (a test takes
 * ports for its servers, then a service it starts takes its own), and two
 * servers of one test would then race for it.
 */
const handedOut = new Set<number>()

/** n distinct free ports on 127.0.0.1 (all held open together, then released), none handed out before by this process. */
export async function freePorts(n: number): Promise<number[]> {
  const held: Server[] = []
  const ports: number[] = []
  try {
    // Ports handed out before stay held while more are asked for, so the OS does not offer them again.
    for (let tries = 0; ports.length < n; tries++) {
      if (tries >= n + 256) throw new Error(`freePorts: no ${n} fresh ports after ${tries} tries`)
      const s = await listenZero()
      held.push(s)
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      if (port !== 0 && !handedOut.has(port)) ports.push(port)
    }
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))))
  }
  for (const p of ports) handedOut.add(p)
  return ports
}
