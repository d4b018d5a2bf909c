// Docker discovery against the real Docker Engine (scripts/docker-up.sh):
// what the source publishes, and when. Traffic through the engine is in
// docker-traffic.test.ts.
import { createConnection, createServer } from 'node:net'
import type { Server as NetServer, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DockerSource } from '../../src/sources/docker/source.ts'
import type { DockerClient } from '../../src/docker-api/client.ts'
import { freePort } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { WEB_HEALTH_IMAGE, WEB_IMAGE, buildImages, cleanup, client, docker, ensureDocker, runId } from './docker-env.ts'
import { runSource, targetsOn } from './recorder.ts'

const RUN = runId('docker')
let api: DockerClient

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  api = client()
}, 300_000)

afterAll(async () => {
  api?.close()
  await cleanup(RUN)
}, 120_000)

async function address(): Promise<string> {
  return `127.0.0.1:${await freePort()}`
}

function labels(addr: string, extra: Record<string, string> = {}): string[] {
  return Object.entries({ 'balancer.enable': 'true', 'balancer.address': addr, 'balancer-test': RUN, ...extra }).flatMap(([k, v]) => ['--label', `${k}=${v}`])
}

async function ipOn(name: string, network: string): Promise<string> {
  return docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name)
}

describe('docker source', () => {
  it('publishes a labelled container within a second of its start', async () => {
    const src = runSource(new DockerSource({ client: api }))
    try {
      await src.rec.waitFor(() => true, 5000, 'the first (initial) publish')
      const addr = await address()
      const t0 = Date.now()
      await docker('run', '-d', '--name', `${RUN}-fast`, ...labels(addr), WEB_IMAGE)
      const seen = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the container in the set')
      const startedAt = Date.parse(await docker('inspect', '-f', '{{.State.StartedAt}}', `${RUN}-fast`))
      const sinceStart = seen.at - startedAt
      const sinceRun = seen.at - t0
      console.log(`[measure] docker discovery: published ${sinceStart} ms after the container started (${sinceRun} ms after "docker run" was called)`)
      expect(sinceStart).toBeLessThan(1000)
      expect(targetsOn(seen, addr)).toEqual([`${await ipOn(`${RUN}-fast`, 'bridge')}:8080`])
      expect(seen.names).toContain(`${RUN}-fast`)
    } finally {
      await src.stop()
    }
  })

  it('drops a container on its kill event, while its process is still running (docker stop)', async () => {
    const src = runSource(new DockerSource({ client: api }))
    const name = `${RUN}-stop`
    try {
      const addr = await address()
      await docker('run', '-d', '--name', name, '--env', 'DRAIN=3', ...labels(addr), WEB_IMAGE)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the container in the set')
      const t0 = Date.now()
      const stopping = docker('stop', '-t', '10', name)
      const gone = await src.rec.waitFor((p) => targetsOn(p, addr).length === 0, 5000, 'the container out of the set')
      const running = await docker('inspect', '-f', '{{.State.Running}}', name)
      console.log(`[measure] docker stop: out of the published set ${gone.at - t0} ms after "docker stop" was called; process still running then: ${running}`)
      expect(running).toBe('true')
      await stopping
      // Started again: back in.
      await docker('start', name)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the restarted container back in the set')
    } finally {
      await src.stop()
    }
  })

  it('keeps a container that gets a signal that does not stop it (docker kill -s HUP), drops it on pause', async () => {
    const src = runSource(new DockerSource({ client: api }))
    try {
      const addr = await address()
      await docker('run', '-d', '--name', `${RUN}-hup`, ...labels(addr), WEB_IMAGE)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the container in the set')
      await docker('kill', '-s', 'HUP', `${RUN}-hup`)
      // Events are handled in order: once a later container shows up, the HUP has been handled.
      await docker('run', '-d', '--name', `${RUN}-marker`, ...labels(addr), WEB_IMAGE)
      const after = await src.rec.waitFor((p) => targetsOn(p, addr).length === 2, 5000, 'the marker container')
      expect(after.names).toEqual(expect.arrayContaining([`${RUN}-hup`, `${RUN}-marker`]))
      await docker('pause', `${RUN}-hup`)
      const paused = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the paused container out')
      expect(paused.names).not.toContain(`${RUN}-hup`)
      await docker('unpause', `${RUN}-hup`)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 2, 5000, 'the unpaused container back')
    } finally {
      await src.stop()
    }
  })

  it('reaches a container on two networks on the labelled one', async () => {
    const src = runSource(new DockerSource({ client: api }))
    const front = `${RUN}-front`
    const back = `${RUN}-back`
    const name = `${RUN}-twonets`
    try {
      await docker('network', 'create', '--label', `balancer-test=${RUN}`, front)
      await docker('network', 'create', '--label', `balancer-test=${RUN}`, back)
      const addr = await address()
      await docker('run', '-d', '--name', name, '--network', front, ...labels(addr, { 'balancer.network': back }), WEB_IMAGE)
      // Not on `back` yet: reported, not published.
      const problem = await src.rec.waitFor((p) => p.problems.some((x) => x.path === `docker:${name}`), 5000, 'a problem for the container')
      expect(problem.problems.find((x) => x.path === `docker:${name}`)?.message).toContain('not on network')
      expect(targetsOn(problem, addr)).toEqual([])
      // The network connect event brings it in, on `back`.
      await docker('network', 'connect', back, name)
      const seen = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the container on its labelled network')
      expect(targetsOn(seen, addr)).toEqual([`${await ipOn(name, back)}:8080`])
      expect(await ipOn(name, back)).not.toBe(await ipOn(name, front))
    } finally {
      await src.stop()
    }
  })

  it('gives an unhealthy container no traffic, and drops one that turns unhealthy', async () => {
    const src = runSource(new DockerSource({ client: api }))
    const sick = `${RUN}-sick`
    const well = `${RUN}-well`
    try {
      const addr = await address()
      await docker('run', '-d', '--name', sick, '--env', 'UNHEALTHY=1', ...labels(addr), WEB_HEALTH_IMAGE)
      await docker('run', '-d', '--name', well, ...labels(addr), WEB_HEALTH_IMAGE)
      const seen = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 10_000, 'the healthy container')
      expect(seen.names).toContain(well)
      expect(seen.names).not.toContain(sick)
      expect(await docker('inspect', '-f', '{{.State.Health.Status}}', well)).toBe('healthy')
      // The sick one has been judged by Docker by now (interval 1 s, 1 retry); a full listing agrees.
      await until(async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', sick)) === 'unhealthy', 10_000, 'Docker to judge the container unhealthy')
      const listed = await new DockerSource({ client: api }).once(AbortSignal.timeout(10_000))
      expect(listed.find((t) => t.name === sick)?.skipped).toBe('health: unhealthy')
      expect(targetsOn(src.rec.latest(), addr)).toEqual([`${await ipOn(well, 'bridge')}:8080`])
      // Turning unhealthy: out on the health_status event.
      await docker('exec', well, 'rm', '/tmp/healthy')
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 0, 10_000, 'the container out after turning unhealthy')
    } finally {
      await src.stop()
    }
  })

  it('recovers when the events stream is cut: reconnects with backoff and resyncs from a full listing', async () => {
    // A real TCP hop in front of the daemon's socket (tcp:// endpoint): the test cuts every connection and refuses new ones for a while.
    const sockets = new Set<Socket>()
    let refusing = false
    const proxy: NetServer = createServer((down) => {
      if (refusing) return down.destroy()
      const up = createConnection('/var/run/docker.sock')
      sockets.add(down).add(up)
      down.pipe(up).pipe(down)
      const drop = (): void => {
        down.destroy()
        up.destroy()
        sockets.delete(down)
        sockets.delete(up)
      }
      down.on('error', drop).on('close', drop)
      up.on('error', drop).on('close', drop)
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    const port = (proxy.address() as { port: number }).port
    const viaProxy = client(`http://127.0.0.1:${port}`)
    const src = runSource(new DockerSource({ client: viaProxy, minBackoffMs: 100, maxBackoffMs: 400, resyncMs: 600_000 }))
    try {
      const addr = await address()
      await docker('run', '-d', '--name', `${RUN}-before`, ...labels(addr), WEB_IMAGE)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 5000, 'the first container')
      refusing = true
      for (const s of sockets) s.destroy()
      await src.rec.waitReport((e) => e !== null, 5000, 'the cut to be reported')
      // While the stream is down, one container starts and the other stops: no event can tell the source.
      await docker('run', '-d', '--name', `${RUN}-during`, ...labels(addr), WEB_IMAGE)
      await docker('rm', '-f', `${RUN}-before`)
      const t0 = Date.now()
      refusing = false
      const seen = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1 && p.names.includes(`${RUN}-during`), 10_000, 'the resync after reconnecting')
      console.log(`[measure] events stream cut: resynced ${seen.at - t0} ms after the daemon was reachable again`)
      expect(src.rec.reports[src.rec.reports.length - 1]?.err).toBeNull()
      // And events flow again on the new stream.
      await docker('rm', '-f', `${RUN}-during`)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 0, 5000, 'the removal seen through the new stream')
    } finally {
      await src.stop()
      viaProxy.close()
      for (const s of sockets) s.destroy()
      proxy.close()
    }
  })

  it('reports label mistakes with the container name and keeps the container out', async () => {
    const src = runSource(new DockerSource({ client: api }))
    const name = `${RUN}-badlabel`
    try {
      const addr = await address()
      await docker('run', '-d', '--name', name, ...labels(addr, { 'balancer.weight': 'heavy', 'balancer.health.path': '/health' }), WEB_IMAGE)
      const p = await src.rec.waitFor((x) => x.problems.some((q) => q.path === `docker:${name}`), 5000, 'the label problem')
      expect(p.problems.filter((q) => q.path === `docker:${name}`).map((q) => q.message)).toEqual(['balancer.weight: must be an integer 1-1000, got "heavy"'])
      expect(targetsOn(p, addr)).toEqual([])
    } finally {
      await src.stop()
    }
  })

  it('keeps out a container whose labels would inject into a request head (CR LF, a tab, U+010A)', async () => {
    const src = runSource(new DockerSource({ client: api }))
    const name = `${RUN}-inject`
    try {
      const addr = await address()
      await docker('run', '-d', '--name', name, ...labels(addr, { 'balancer.health.path': '/h\r\nX-Injected: 1', 'balancer.pathprefix': '/a\tb', 'balancer.health.host': 'x\u010d\u010ay' }), WEB_IMAGE)
      const p = await src.rec.waitFor((x) => x.problems.some((q) => q.path === `docker:${name}`), 5000, 'the label problem')
      const mine = p.problems.filter((q) => q.path === `docker:${name}`).map((q) => q.message)
      expect(mine.map((m) => m.split(':')[0]).sort()).toEqual(['balancer.health.host', 'balancer.health.path', 'balancer.pathprefix'])
      expect(mine.find((m) => m.startsWith('balancer.health.path'))).toContain('CR at position 3')
      expect(mine.find((m) => m.startsWith('balancer.pathprefix'))).toContain('a tab')
      expect(targetsOn(p, addr)).toEqual([])
    } finally {
      await src.stop()
    }
  })
})
