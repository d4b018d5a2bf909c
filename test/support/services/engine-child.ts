// An Engine in its own process, for a test that needs the process to end by
// itself: applies a one-route snapshot with an active check against the
// upstream port given, prints `HEALTHY` once the check passed, shuts the
// engine down on a line `stop` on stdin, prints `STOPPED`, and then has
// nothing left to do: it must exit without process.exit.
//   node engine-child.ts <upstream port>

import { Engine } from '../../../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../../../src/engine/types.ts'
import { snapshotFor } from '../snapshot.ts'

const port = Number(process.argv[2])
const quiet = { info: () => {}, warn: () => {}, error: () => {} }
const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: quiet })
await engine.apply(
  snapshotFor({ routes: [{ upstreams: [{ host: '127.0.0.1', port }], check: { type: 'http', path: '/healthz', intervalMs: 20, timeoutMs: 1000, probe: 'http GET  /healthz 200-399' } }] }, 1),
)
const poll = setInterval(() => {
  if (engine.stats().upstreams.every((u) => u.state === 'healthy')) {
    clearInterval(poll)
    process.stdout.write('HEALTHY\n')
  }
}, 10)
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d: string) => {
  if (!d.includes('stop')) return
  process.stdin.destroy()
  void engine.shutdown(0).then(() => process.stdout.write('STOPPED\n'))
})
