// Starts an Engine on a hand-built snapshot for tests: defaults from
// DEFAULT_ENGINE_OPTIONS, a silent log (set ENGINE_TEST_LOG=1 to see it).

import { Engine } from '../../src/engine/engine.ts'
import { DEFAULT_ENGINE_OPTIONS } from '../../src/engine/types.ts'
import type { CertEntry, EngineLog, EngineOptions } from '../../src/engine/types.ts'
import type { RoutingSnapshot } from '../../src/compiler/snapshot.ts'

const print = process.env.ENGINE_TEST_LOG === '1'
const line = (level: string) => (obj: object, msg: string) => {
  if (print) console.log(level, msg, JSON.stringify(obj))
}
export const silentLog: EngineLog = { info: line('info'), warn: line('warn'), error: line('error') }

export type EngineTestOptions = Partial<EngineOptions>

export interface StartedEngine {
  engine: Engine
  /** Bound port of the snapshot's first listener. */
  port: number
  /** Bound port of a listener by its key; throws when it is not bound. */
  portOf(key: string): number
  /** Shuts the engine down (grace 0); safe to call after a test already did. */
  stop(): Promise<void>
}

/** certs: what the snapshot's TLS listeners serve (given to the engine before the snapshot). */
export async function startEngine(snap: RoutingSnapshot, opts: EngineTestOptions = {}, certs: readonly CertEntry[] = []): Promise<StartedEngine> {
  const engine = new Engine({ ...DEFAULT_ENGINE_OPTIONS, log: silentLog, ...opts })
  if (certs.length > 0) engine.setCertificates(certs)
  await engine.apply(snap)
  const portOf = (key: string): number => {
    const p = engine.boundPort(key)
    if (p === null || p === 0) throw new Error(`listener ${key} is not bound`)
    return p
  }
  const first = snap.listeners.keys().next()
  if (first.done === true) throw new Error('snapshot has no listener')
  let stopped: Promise<void> | null = null
  return {
    engine,
    port: portOf(first.value),
    portOf,
    stop: () => (stopped ??= engine.shutdown(0)),
  }
}
