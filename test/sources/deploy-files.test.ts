// The deployment files at the repository root: compose/compose.yaml and
// swarm-stack.yml are valid for Debian's docker-compose (installed by
// scripts/docker-up.sh), run the balancer the way docs/discovery.md says, and
// label the demo app with labels the balancer accepts.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { readLabels } from '../../src/model/labels.ts'
import { ensureDocker } from './docker-env.ts'

const ROOT = resolve(import.meta.dirname, '../..')

interface ComposeFile {
  services: Record<string, { labels?: Record<string, string>; deploy?: { mode?: string; labels?: Record<string, string> }; environment?: Record<string, string>; volumes?: string[] }>
}

function config(file: string): ComposeFile {
  const out = execFileSync('docker-compose', ['-f', resolve(ROOT, file), 'config'], {
    env: { ...process.env, BALANCER_TOKEN: 'x'.repeat(24) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return parse(out) as ComposeFile
}

beforeAll(() => ensureDocker(), 300_000)

describe('deployment files', () => {
  it('compose/compose.yaml: the balancer watches the Docker socket; the demo app is labelled validly', () => {
    const c = config('compose/compose.yaml')
    const b = c.services.balancer
    expect(b?.environment?.BALANCER_DOCKER).toBe('1')
    expect(b?.volumes?.some((v) => v.startsWith('/var/run/docker.sock:/var/run/docker.sock'))).toBe(true)
    const labels = readLabels(c.services.hello?.labels)
    expect(labels).toMatchObject({ enabled: true, problems: [], notes: [] })
  })

  it('swarm-stack.yml: the balancer is a global service with the socket and a token secret; the demo service uses deploy.labels', () => {
    const c = config('swarm-stack.yml')
    const b = c.services.balancer
    expect(b?.deploy?.mode).toBe('global')
    expect(b?.environment?.BALANCER_SWARM).toBe('1')
    expect(b?.environment?.BALANCER_TOKEN_FILE).toBe('/run/secrets/balancer_token')
    expect(JSON.stringify(b?.volumes)).toContain('/var/run/docker.sock')
    const labels = readLabels(c.services.hello?.deploy?.labels)
    expect(labels).toMatchObject({ enabled: true, problems: [], notes: [] })
    // The same file as written (not only as docker-compose normalises it) carries them under deploy.
    expect(readFileSync(resolve(ROOT, 'swarm-stack.yml'), 'utf8')).toMatch(/deploy:\n(?:.*\n)*?\s+labels:\n\s+balancer\.enable: "true"/)
  })
})
