import { describe, expect, it } from 'vitest'
import { parseOptions, usage } from '../../src/cli/options.ts'
import type { Options } from '../../src/cli/options.ts'

function ok(argv: string[], env: Record<string, string> = {}): Options {
  const o = parseOptions(argv, env)
  if ('errors' in o) throw new Error(o.errors.join('; '))
  return o
}

describe('--api-host', () => {
  it('is empty by default', () => {
    expect(ok([]).apiHostNames).toEqual([])
  })
  it('is repeatable, takes commas, lower-cases, and adds to BALANCER_API_HOST', () => {
    expect(ok(['--api-host', 'Admin.Example.com', '--api-host=b.example,c.example'], { BALANCER_API_HOST: 'env.example, b.example' }).apiHostNames).toEqual([
      'env.example',
      'b.example',
      'admin.example.com',
      'c.example',
    ])
  })
  it('refuses a port, a scheme, a trailing dot or spaces, naming the flag', () => {
    for (const bad of ['a.example:9123', 'http://a.example', 'a.example.', 'a b', '[::1]']) {
      expect(parseOptions(['--api-host', bad], {})).toEqual({ errors: [expect.stringContaining('--api-host: must be a DNS name without a port')] })
    }
    expect(parseOptions([], { BALANCER_API_HOST: 'x:1' })).toEqual({ errors: [expect.stringContaining('BALANCER_API_HOST: must be a DNS name')] })
  })
  it('is in --help', () => {
    expect(usage()).toContain('--api-host NAME')
    expect(usage()).toContain('BALANCER_API_HOST')
  })
})
