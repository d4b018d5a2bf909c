import { describe, expect, it } from 'vitest'
import { parseOptions, usage } from '../../src/cli/options.ts'
import type { Options } from '../../src/cli/options.ts'
import { DOCKER_FROM_ENV } from '../../src/docker-api/endpoint.ts'

function ok(argv: string[], env: Record<string, string> = {}): Options {
  const o = parseOptions(argv, env)
  if ('errors' in o) throw new Error(o.errors.join('; '))
  return o
}

describe('discovery flags', () => {
  it('are off by default', () => {
    expect(ok([])).toMatchObject({ docker: null, swarm: false, dockerResyncMs: 30_000 })
  })

  it('--docker alone means DOCKER_HOST or the default socket (read when sources start) and does not take the next argument as its value', () => {
    expect(ok(['--docker', '--grace', '5s'])).toMatchObject({ docker: DOCKER_FROM_ENV, graceMs: 5000 })
  })

  it('--docker=ENDPOINT takes unix, tcp and ssh endpoints', () => {
    expect(ok(['--docker=unix:///run/docker.sock']).docker).toBe('unix:///run/docker.sock')
    expect(ok(['--docker=tcp://10.0.0.5:2376']).docker).toBe('tcp://10.0.0.5:2376')
    expect(ok(['--docker=ssh://deploy@10.0.0.5:2222']).docker).toBe('ssh://deploy@10.0.0.5:2222')
    expect(parseOptions(['--docker=ssh://deploy@10.0.0.5:99999'], {})).toEqual({ errors: [expect.stringContaining('--docker: port must be 1-65535')] })
  })

  it('refuses an endpoint it cannot use', () => {
    expect(parseOptions(['--docker=ftp://x'], {})).toEqual({ errors: [expect.stringContaining('--docker: must be unix:///path/to/docker.sock, tcp://host:port or ssh://user@host')] })
  })

  it('--swarm is valueless; --docker-resync takes a duration', () => {
    expect(ok(['--swarm', '--docker-resync', '5s'])).toMatchObject({ swarm: true, docker: null, dockerResyncMs: 5000 })
    expect(parseOptions(['--swarm=maybe'], {})).toEqual({ errors: [expect.stringContaining('--swarm: takes no value')] })
  })

  it('reads BALANCER_DOCKER (1 or an endpoint), BALANCER_SWARM and BALANCER_DOCKER_RESYNC', () => {
    expect(ok([], { BALANCER_DOCKER: '1', BALANCER_SWARM: '1', BALANCER_DOCKER_RESYNC: '1m' })).toMatchObject({ docker: DOCKER_FROM_ENV, swarm: true, dockerResyncMs: 60_000 })
    expect(ok([], { BALANCER_DOCKER: 'tcp://127.0.0.1:2375' }).docker).toBe('tcp://127.0.0.1:2375')
    expect(ok(['--docker=0'], { BALANCER_DOCKER: '1' }).docker).toBeNull()
  })

  it('shows them in --help', () => {
    expect(usage()).toContain('--docker[=ENDPOINT]')
    expect(usage()).toContain('--swarm')
    expect(usage()).toContain('--docker-resync DURATION')
  })
})

describe('--docker-constraint and --swarm-constraint', () => {
  it('parse the expression; env works too', () => {
    const o = ok(['--docker-constraint', 'project:shop && label:tenant=payments'], { BALANCER_SWARM_CONSTRAINT: 'stack:bank' })
    expect(o.dockerConstraint?.text).toBe('project:shop && label:tenant=payments')
    expect(o.swarmConstraint?.text).toBe('stack:bank')
    expect(ok([]).dockerConstraint).toBeNull()
  })
  it('a parse error is a startup error naming the flag and the column', () => {
    expect(parseOptions(['--docker-constraint', 'project:shop &&'], {})).toEqual({
      errors: ['--docker-constraint: column 16: expected a term: label:KEY[=VALUE], network:NAME, project:NAME, stack:NAME or name:GLOB'],
    })
    expect(parseOptions([], { BALANCER_SWARM_CONSTRAINT: '(stack:a' })).toEqual({ errors: ['BALANCER_SWARM_CONSTRAINT: column 9: expected ")"'] })
  })
})

describe('--trusted-proxies', () => {
  it('takes IPv4 and IPv6 addresses and CIDRs, comma separated; none by default', () => {
    expect(ok([]).trustedProxies).toEqual([])
    expect(ok(['--trusted-proxies', '10.0.0.0/8, 192.0.2.7,2001:db8::/32,::1']).trustedProxies).toEqual(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1'])
    expect(ok([], { BALANCER_TRUSTED_PROXIES: '172.16.0.0/12' }).trustedProxies).toEqual(['172.16.0.0/12'])
  })
  it('refuses what is not an address or CIDR, naming the flag', () => {
    for (const bad of ['10.0.0.0/33', 'proxy.example', '2001:db8::/129', '10.0.0.0/x']) {
      expect(parseOptions(['--trusted-proxies', bad], {})).toEqual({ errors: [`--trusted-proxies: must be IP addresses or CIDRs like 10.0.0.0/8 or 2001:db8::/32, got "${bad}"`] })
    }
  })
})
