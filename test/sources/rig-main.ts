// `node test/sources/rig-main.ts [--docker] [--swarm] [--swarm-constraint EXPR] ...`:
// the rig as a process, for running inside a container; takes the
// balancer's own discovery flags. Logs JSON lines; `rig ready` once started.
// SIGTERM stops it.
import { pino } from 'pino'
import { parseOptions } from '../../src/cli/options.ts'
import { startRig } from './rig.ts'

const o = parseOptions(process.argv.slice(2), {})
if ('errors' in o) throw new Error(o.errors.join('; '))
const log = pino({ level: 'info' })
const rig = await startRig(o, { servers: [] }, log)
log.info({}, 'rig ready')
process.on('SIGTERM', () => {
  void rig.stop().then(() => process.exit(0))
})
