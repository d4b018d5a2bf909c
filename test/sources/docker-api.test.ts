// The API shows what is served, end to end: the real balancer process
// (bin/balancer.js --docker, a file store) and real labelled containers. A
// container appears in GET / with its origin within 2 s of starting, an edit
// of it is 409 E_READ_ONLY, a stored server it joins stays editable in its
// stored parts, and `?origin=store` round-trips through PUT. The balancer runs
// on the host and reaches the containers on the bridge network; each server
// listens on its own loopback port.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startBalancer, tempDir, until } from '../e2e/harness.ts'
import type { Running } from '../e2e/harness.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'
import { firstAnswer } from './load.ts'

const RUN = runId('dapi')
let bal: Running
let file: string
let storedPort = 0

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  storedPort = await freePort()
  file = join(tempDir(), 'balancer.json')
  writeFileSync(file, JSON.stringify({ servers: [{ address: `127.0.0.1:${storedPort}`, upstreams: [{ Target: '127.0.0.1', Port: 9 }] }] }))
  bal = await startBalancer(['--config', file, '--docker'])
}, 300_000)

afterAll(async () => {
  await bal?.stop()
  await cleanup(RUN)
}, 120_000)

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; text: string; json: any; etag: string | null }> {
  const res = await fetch(`${bal.api}${path}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, text, json, etag: res.headers.get('etag') }
}

async function web(name: string, address: string): Promise<void> {
  const labels = { 'balancer.enable': 'true', 'balancer.address': address, 'balancer-test': RUN }
  await docker('run', '-d', '--name', name, '--env', `NAME=${name}`, ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), WEB_IMAGE)
}

describe('discovered containers in the API', () => {
  it('a container appears in GET / with its origin within 2 s of starting, and an edit of it is 409 E_READ_ONLY', async () => {
    const port = await freePort()
    const address = `127.0.0.1:${port}`
    const name = `${RUN}-a`
    await web(name, address)
    let seenAt = 0
    await until(
      async () => {
        const r = await api('GET', '/')
        const s = (r.json?.servers ?? []).find((x: { address: string }) => x.address === address)
        if (s === undefined) return false
        seenAt = Date.now()
        expect(s.origin).toEqual({ source: 'docker', name })
        expect(s.upstreams).toEqual([expect.objectContaining({ Port: 8080, origin: { source: 'docker', name } })])
        return true
      },
      5000,
      'the container in GET /',
    )
    const startedAt = Date.parse(await docker('inspect', '-f', '{{.State.StartedAt}}', name))
    console.log(`[measure] docker container in GET / ${seenAt - startedAt} ms after it started`)
    expect(seenAt - startedAt).toBeLessThan(2000)
    await firstAnswer(port, (r) => r.status === 200 && r.body === name, 5000, 'traffic to the container')

    const target = ((await api('GET', `/server/${address}`)).json.upstreams[0] as { Target: string }).Target
    const before = readFileSync(file, 'utf8')
    for (const [method, path, body] of [
      ['PUT', `/server/${address}/upstream/${target}-8080`, { Weight: 5 }],
      ['DELETE', `/server/${address}`, undefined],
      ['PUT', `/server/${address}`, { upstreams: [] }],
      ['POST', '/server', { address }],
    ] as const) {
      const r = await api(method, path, body)
      expect({ method, path, status: r.status, code: r.json?.code }).toEqual({ method, path, status: 409, code: 'E_READ_ONLY' })
      expect(r.json.message).toContain(`discovered (docker ${JSON.stringify(name)})`)
    }
    expect(readFileSync(file, 'utf8')).toBe(before)
    // Still served, unchanged.
    await firstAnswer(port, (r) => r.status === 200 && r.body === name, 5000, 'traffic after the refused edits')
  })

  it('a stored server a container joins shows both, stays editable in its stored parts, and ?origin=store round-trips through PUT', async () => {
    const address = `127.0.0.1:${storedPort}`
    const name = `${RUN}-b`
    await web(name, address)
    let server: any
    await until(
      async () => {
        server = (await api('GET', `/server/${address}`)).json
        return (server?.upstreams ?? []).length === 2
      },
      5000,
      'the container joining the stored server',
    )
    expect(server).not.toHaveProperty('origin')
    expect(server.upstreams).toEqual([{ Target: '127.0.0.1', Port: 9, Priority: 1, Weight: 1 }, expect.objectContaining({ Port: 8080, origin: { source: 'docker', name } })])
    const discovered = server.upstreams[1] as { Target: string }
    expect((await api('DELETE', `/server/${address}/upstream/${discovered.Target}-8080`)).json?.code).toBe('E_READ_ONLY')
    // The stored parts: the filter, the stored upstream.
    expect((await api('PUT', `/server/${address}/upstream/127.0.0.1-9`, { Weight: 2 })).status).toBe(200)

    // Backup and restore through the API: what ?origin=store gives, PUT back, changes nothing.
    const text = readFileSync(file, 'utf8')
    const stored = await api('GET', '/?origin=store')
    expect(stored.text).toBe(text)
    expect(stored.text).not.toContain(name)
    for (const s of stored.json.servers as Array<{ address: string }>) expect((await api('PUT', `/server/${s.address}`, s)).status).toBe(200)
    expect(readFileSync(file, 'utf8')).toBe(text)
    // And GET / still shows the discovered member, with the stored configuration's ETag.
    const served = await api('GET', '/')
    expect(served.etag).toBe(stored.etag)
    expect(served.text).toContain(name)
    await firstAnswer(storedPort, (r) => r.status === 200 && r.body === name, 5000, 'traffic to the joined container')
  })
})
