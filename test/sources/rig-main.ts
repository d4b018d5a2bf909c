// `node test/sources/rig-main.ts [--docker] [--swarm]`: the rig as a process,
// for running inside a container. Logs JSON lines; `rig ready` once started.
// SIGTERM stops it.
import { pino } from 'pino'
import { DEFAULT_DOCKER_ENDPOINT } from '../../src/docker/endpoint.ts'
import { startRig } from './rig.ts'

const args = process.argv.slice(2)
const log = pino({ level: 'info' })
const rig = await startRig({ docker: args.includes('--docker') ? DEFAULT_DOCKER_ENDPOINT : null, swarm: args.includes('--swarm'), dockerResyncMs: 30_000 }, { servers: [] }, log)
log.info({}, 'rig ready')
process.on('SIGTERM', () => {
  void rig.stop().then(() => process.exit(0))
})
