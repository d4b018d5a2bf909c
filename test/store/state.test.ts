import { describe, expect, it } from 'vitest'
import { configHash } from '../../src/model/canonical.ts'
import { BalancerError } from '../../src/model/errors.ts'
import type { Config } from '../../src/model/types.ts'
import { ConfigState } from '../../src/store/state.ts'
import type { StoreState } from '../../src/store/store.ts'

const stateOf = (config: Config): StoreState => ({ config, revision: configHash(config) })
const empty = stateOf({ servers: [] })
const one = stateOf({
  servers: [{ address: ':80', filter: { Hosts: [], Schemes: [], PathPrefix: '' }, upstreams: [], fallbacks: [], routes: [] }],
})

describe('ConfigState', () => {
  it('notifies subscribers only when the revision changes', () => {
    const state = new ConfigState(empty)
    const seen: string[] = []
    state.subscribe((s) => seen.push(s.revision))
    expect(state.replace(stateOf({ servers: [] }))).toBe(false)
    expect(state.replace(one)).toBe(true)
    expect(state.replace(one)).toBe(false)
    expect(seen).toEqual([one.revision])
    expect(state.current()).toBe(one)
  })

  it('unsubscribes, and one subscription per subscribe call', () => {
    const state = new ConfigState(empty)
    let calls = 0
    const fn = () => calls++
    const off1 = state.subscribe(fn)
    state.subscribe(fn)
    state.replace(one)
    expect(calls).toBe(2)
    off1()
    state.replace(empty)
    expect(calls).toBe(3)
  })

  it('records errors with code, problems and time, and clears them', () => {
    const state = new ConfigState(empty)
    expect(state.lastError()).toBeNull()
    state.setError(new BalancerError('E_VALIDATION', 'bad', [{ path: 'servers[0].address', message: 'required' }]))
    expect(state.lastError()).toMatchObject({ code: 'E_VALIDATION', message: 'bad', problems: [{ path: 'servers[0].address' }] })
    expect(Date.parse(state.lastError()?.at ?? '')).not.toBeNaN()
    state.setError(new Error('disk on fire'))
    expect(state.lastError()).toMatchObject({ code: 'E_INTERNAL', message: 'disk on fire', problems: [] })
    state.setError(null)
    expect(state.lastError()).toBeNull()
  })

  it('keeps notifying after a subscriber throws, and records its error', () => {
    const state = new ConfigState(empty)
    const seen: string[] = []
    state.subscribe(() => {
      throw new BalancerError('E_LISTEN', 'port 80 in use')
    })
    state.subscribe((s) => seen.push(s.revision))
    expect(state.replace(one)).toBe(true)
    expect(seen).toEqual([one.revision])
    expect(state.lastError()?.code).toBe('E_LISTEN')
  })
})
