import { usableCpus } from '../../src/cli/cpus.ts'
import { describe, expect, it } from 'vitest'
import { parseOptions, usage } from '../../src/cli/options.ts'

describe('--workers', () => {
  it('defaults to the CPUs this process may use', () => {
    expect(parseOptions([], {})).toMatchObject({ workers: usableCpus() })
  })

  it('takes N from the flag or BALANCER_WORKERS (the flag wins)', () => {
    expect(parseOptions(['--workers', '3'], {})).toMatchObject({ workers: 3 })
    expect(parseOptions(['--workers=1'], {})).toMatchObject({ workers: 1 })
    expect(parseOptions([], { BALANCER_WORKERS: '2' })).toMatchObject({ workers: 2 })
    expect(parseOptions(['--workers', '4'], { BALANCER_WORKERS: '2' })).toMatchObject({ workers: 4 })
  })

  it('refuses anything but an integer 1-256', () => {
    for (const v of ['0', '-1', '1.5', 'two', '257', '']) {
      expect(parseOptions([`--workers=${v}`], {})).toEqual({ errors: [expect.stringContaining('--workers: must be an integer 1-256')] })
    }
  })

  it('shows in --help', () => {
    expect(usage()).toContain('--workers N')
    expect(usage()).toContain('BALANCER_WORKERS')
  })
})
