// The password-hash thread (verifier.ts starts it): bcrypt and argon2
// verifications take milliseconds to a second of CPU each, by design, so
// they run here and never on the thread that serves connections. hash-wasm
// (WebAssembly, no native addon) does the hashing and compares in constant
// time.

import { parentPort } from 'node:worker_threads'
import { argon2Verify, bcryptVerify } from 'hash-wasm'

interface Job {
  id: number
  password: string
  hash: string
}

async function verify(job: Job): Promise<boolean> {
  const h = job.hash
  // `$2y$` (Apache's name) and `$2a$` are the same algorithm as `$2b$` for the hashes htpasswd writes.
  if (h.startsWith('$2')) return bcryptVerify({ password: job.password, hash: `$2b$${h.slice(4)}` })
  return argon2Verify({ password: job.password, hash: h })
}

const port = parentPort
if (port !== null) {
  port.on('message', (job: Job) => {
    verify(job).then(
      (ok) => port.postMessage({ id: job.id, ok }),
      () => port.postMessage({ id: job.id, ok: false }),
    )
  })
}
