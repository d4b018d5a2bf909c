// The data path main.ts wires, assembled from the real components for the
// discovery traffic tests: sources -> Control (merge, coalesced compile) ->
// Engine, with a file store in a temporary directory. Also runnable as a
// process (rig-main.ts), e.g. in a container on a Swarm overlay network.
import { pino } from 'pino'
import type { Logger } from 'pino'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Control } from '../../src/control/control.ts'
import { engineTarget } from '../../src/control/reloader.ts'
import { Engine } from '../../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../../src/engine/types.ts'
import { serializeConfig } from '../../src/model/canonical.ts'
import type { Config } from '../../src/model/types.ts'
import { FileStore } from '../../src/store/file.ts'
import type { RunningSources, SourceOptions } from '../../src/sources/start.ts'
import { startSources } from '../../src/sources/start.ts'
import { parseRegistryUrls } from '../../src/kv/registry-url.ts'

export interface Rig {
  engine: Engine
  control: Control
  /** Every applied or refused reload, in order. */
  outcomes: Array<{ at: number; version: number; error: Error | null }>
  stop(): Promise<void>
}

export async function startRig(opts: SourceOptions, base: Config = { servers: [] }, log: Logger = pino({ level: 'silent' })): Promise<Rig> {
  const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: log.child({ component: 'engine' }) })
  const outcomes: Rig['outcomes'] = []
  const dir = mkdtempSync(join(tmpdir(), 'balancer-rig-'))
  writeFileSync(join(dir, 'balancer.json'), serializeConfig(base))
  const store = new FileStore(join(dir, 'balancer.json'))
  const urls = parseRegistryUrls(opts.registries ?? [])
  if ('errors' in urls) throw new Error(urls.errors.join('; '))
  let sources: RunningSources | null = null
  const follow = (m: ReadonlyMap<string, ReadonlySet<string>>): void => {
    for (const r of sources?.registries ?? []) r.follow(m.get(r.name) ?? [])
  }
  const control = new Control({ store, initial: await store.load(), target: engineTarget(engine), registries: urls.map((u) => u.name), onFollow: follow })
  control.subscribe((e) => outcomes.push({ at: Date.now(), version: e.version, error: e.type === 'refused' ? new Error(e.error.message) : null }))
  await control.start()
  sources = startSources(
    opts,
    log,
    (origin, servers, detail) => void control.discovered(origin, servers, detail.names, detail.meta, detail.services),
    (origin, err) => {
      if (err !== null) log.warn({ origin, err: err.message }, 'source error')
    },
  )
  follow(control.followed())
  const running = sources
  return {
    engine,
    control,
    outcomes,
    async stop() {
      await running.stop()
      await engine.shutdown(2000)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
