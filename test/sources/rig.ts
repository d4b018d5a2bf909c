// The data path main.ts wires, assembled from the real components for the
// discovery traffic tests: sources -> Desired (mergeDiscovered) -> Reloader
// (compile) -> Engine. Also runnable as a process (rig-main.ts), e.g. in a
// container on a Swarm overlay network.
import { pino } from 'pino'
import type { Logger } from 'pino'
import { compile } from '../../src/compiler/compile.ts'
import { Desired } from '../../src/control/desired.ts'
import { Reloader } from '../../src/control/reloader.ts'
import { Engine } from '../../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../../src/engine/types.ts'
import type { Config } from '../../src/model/types.ts'
import type { SourceOptions } from '../../src/sources/start.ts'
import { startSources } from '../../src/sources/start.ts'

export interface Rig {
  engine: Engine
  desired: Desired
  /** Every applied or refused reload, in order. */
  outcomes: Array<{ at: number; version: number; error: Error | null }>
  stop(): Promise<void>
}

export async function startRig(opts: SourceOptions, base: Config = { servers: [] }, log: Logger = pino({ level: 'silent' })): Promise<Rig> {
  const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: log.child({ component: 'engine' }) })
  const outcomes: Rig['outcomes'] = []
  const reloader = new Reloader(engine, compile, (o) => outcomes.push({ at: Date.now(), version: o.version, error: o.error }))
  const desired = new Desired(reloader, { config: base, revision: 'base' })
  await desired.setStore({ config: base, revision: 'base' })
  const sources = startSources(
    opts,
    log,
    (origin, servers, detail) => void desired.setDiscovered(origin, servers, detail.names, detail.meta),
    (origin, err) => {
      if (err !== null) log.warn({ origin, err: err.message }, 'source error')
    },
  )
  return {
    engine,
    desired,
    outcomes,
    async stop() {
      await sources.stop()
      await engine.shutdown(2000)
    },
  }
}
