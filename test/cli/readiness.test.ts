// When the balancer says it is ready (src/control/readiness.ts): the stored
// configuration applied, every discovery source's first set applied, no
// upstream waiting for its first check; draining from the stop signal on.
import { describe, expect, it } from 'vitest'
import { Readiness } from '../../src/control/readiness.ts'

describe('Readiness', () => {
  it('waits for the configuration and for every discovery source, then stays ready', () => {
    const r = new Readiness()
    const none = (): boolean => false
    expect(r.state(none)).toBe('starting')
    r.configApplied()
    r.expect(['docker', 'swarm'])
    expect(r.state(none)).toBe('starting')
    r.sourceApplied('docker')
    expect(r.state(none)).toBe('starting')
    r.sourceApplied('swarm')
    expect(r.state(() => true)).toBe('starting') // an upstream still waits for its first check
    expect(r.state(none)).toBe('ready')
    expect(r.state(() => true)).toBe('ready') // a new upstream later does not take it back
    r.draining()
    expect(r.state(none)).toBe('draining')
  })

  it('without discovery, the applied configuration is enough', () => {
    const r = new Readiness()
    r.configApplied()
    r.expect([])
    expect(r.state(() => false)).toBe('ready')
  })
})
