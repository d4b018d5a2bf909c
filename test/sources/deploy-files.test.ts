// The deployment files at the repository root, as Debian's docker-compose
// (installed by scripts/docker-up.sh) reads them: the choices they make and
// that test/deploy relies on when it deploys them for real (stack.test.ts,
// compose.test.ts). The demo apps' labels are labels the balancer accepts.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { parse } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { readLabels } from '../../src/model/labels.ts'
import { ensureDocker } from './docker-env.ts'

const ROOT = resolve(import.meta.dirname, '../..')

interface Service {
  user?: string
  group_add?: string[]
  read_only?: boolean
  labels?: Record<string, string>
  environment?: Record<string, string>
  volumes?: Array<string | { source?: string; target?: string }>
  networks?: Record<string, unknown> | string[]
  deploy?: { mode?: string; labels?: Record<string, string>; update_config?: { order?: string } }
}

function config(file: string): { services: Record<string, Service>; networks?: Record<string, { name?: string; external?: boolean }> } {
  const out = execFileSync('docker-compose', ['-f', resolve(ROOT, file), 'config'], {
    env: { ...process.env, BALANCER_TOKEN: 'x'.repeat(24), DOCKER_GID: '999' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return parse(out) as ReturnType<typeof config>
}

beforeAll(() => ensureDocker(), 300_000)

describe('deployment files', () => {
  it('compose/compose.yaml: a non-root balancer with the socket group, read-only, watching the socket; the demo app labelled validly', () => {
    const c = config('compose/compose.yaml')
    const b = c.services.balancer
    expect(b?.user).toBeUndefined() // the image's uid 1000
    expect(b?.group_add).toEqual(['999'])
    expect(b?.read_only).toBe(true)
    expect(b?.environment?.BALANCER_DOCKER).toBe('1')
    expect(JSON.stringify(b?.volumes)).toContain('/var/run/docker.sock')
    expect(readLabels(c.services.hello?.labels)).toMatchObject({ enabled: true, problems: [], notes: [] })
    // The HTTPS example: TLS on :443, a stored certificate unless ACME is asked for.
    expect(readLabels(c.services['hello-tls']?.labels)).toMatchObject({ enabled: true, problems: [], notes: [], settings: { address: ':443', tls: { acme: false } } })
  })

  it('swarm-stack.yml: a global balancer on the host network, updated start-first, non-root and read-only; the demo on the node-local bridge', () => {
    const c = config('swarm-stack.yml')
    const b = c.services.balancer
    expect(b?.deploy?.mode).toBe('global')
    expect(b?.deploy?.update_config?.order).toBe('start-first')
    expect(b?.user).toBe('1000:999')
    expect(b?.read_only).toBe(true)
    expect(b?.environment?.BALANCER_TOKEN_FILE).toBe('/run/secrets/balancer_token')
    expect(Object.keys(b?.networks ?? {})).toEqual(['host'])
    expect(c.networks?.host).toMatchObject({ external: true, name: 'host' })
    const labels = readLabels(c.services.hello?.labels)
    expect(labels).toMatchObject({ enabled: true, problems: [], notes: [] })
    expect(c.services.hello?.labels?.['balancer.network']).toBe('balancer_local')
    expect(readLabels(c.services['hello-tls']?.labels)).toMatchObject({ enabled: true, problems: [], notes: [], settings: { address: ':443', tls: { acme: false } } })
  })
})
