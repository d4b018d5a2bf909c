// Swarm discovery against a real single-node Swarm (scripts/docker-up.sh):
// what the source publishes, and when. The test only compares addresses with
// what the daemon reports; it sends no traffic to the overlay network (the
// traffic test runs the balancer in a container on it: swarm-traffic.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DockerClient } from '../../src/docker-api/client.ts'
import type { DockerEvent } from '../../src/docker-api/types.ts'
import { SwarmSource } from '../../src/sources/swarm/source.ts'
import { freePort } from '../e2e/harness.ts'
import { WEB_IMAGE, buildImages, cleanup, client, docker, ensureDocker, runId } from './docker-env.ts'
import type { PublishedAt } from './recorder.ts'
import { runSource, targetsOn } from './recorder.ts'

const RUN = runId('swarm')
const NET = `${RUN}-net`
let api: DockerClient

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  api = client()
  await docker('network', 'create', '--driver', 'overlay', '--label', `balancer-test=${RUN}`, NET)
}, 300_000)

afterAll(async () => {
  api?.close()
  await cleanup(RUN)
}, 120_000)

async function createService(name: string, addr: string, extra: string[] = [], labels: Record<string, string> = {}): Promise<string> {
  const l = Object.entries({ 'balancer.enable': 'true', 'balancer.address': addr, 'balancer.port': '8080', 'balancer-test': RUN, ...labels }).flatMap(([k, v]) => ['--label', `${k}=${v}`])
  return docker(
    'service',
    'create',
    '--detach',
    '--no-resolve-image',
    '--quiet',
    '--name',
    name,
    '--network',
    NET,
    '--stop-grace-period',
    '5s',
    '--env',
    'DRAIN=1',
    '--container-label',
    `balancer-test=${RUN}`,
    ...l,
    ...extra,
    WEB_IMAGE,
  )
}

async function runningTaskIps(service: string): Promise<string[]> {
  const tasks = await api.listTasks({ service: [service], 'desired-state': ['running'] }, AbortSignal.timeout(5000))
  return tasks
    .filter((t) => t.Status?.State === 'running')
    .flatMap((t) => (t.NetworksAttachments ?? []).filter((a) => a.Network?.Spec?.Name === NET).map((a) => `${(a.Addresses?.[0] ?? '').split('/')[0]}:8080`))
    .sort()
}

/** ms from the moment the last running task of the service reached `running` (daemon's timestamp) to `at`. */
async function sinceTasksRan(service: string, at: number): Promise<number> {
  const tasks = await api.listTasks({ service: [service], 'desired-state': ['running'] }, AbortSignal.timeout(5000))
  const times = tasks.filter((t) => t.Status?.State === 'running').map((t) => Date.parse(t.Status?.Timestamp ?? ''))
  return at - Math.max(...times)
}

describe('swarm source', () => {
  it('follows a service scaled from 1 to 3 tasks and back, by events', async () => {
    // A backstop far away: only events (and the follow they trigger) can explain a fast update.
    const src = runSource(new SwarmSource({ client: api, resyncMs: 600_000 }))
    const name = `${RUN}-scale`
    try {
      const addr = `127.0.0.1:${await freePort()}`
      let t0 = Date.now()
      await createService(name, addr)
      const one = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 30_000, 'one task')
      const created = one.at - t0
      expect(targetsOn(one, addr)).toEqual(await runningTaskIps(name))
      t0 = Date.now()
      await docker('service', 'scale', '--detach', `${name}=3`)
      const three = await src.rec.waitFor((p) => targetsOn(p, addr).length === 3, 30_000, 'three tasks')
      const up = three.at - t0
      const sinceRunning = await sinceTasksRan(name, three.at)
      expect(targetsOn(three, addr)).toEqual(await runningTaskIps(name))
      t0 = Date.now()
      await docker('service', 'scale', '--detach', `${name}=1`)
      const back = await src.rec.waitFor((p) => targetsOn(p, addr).length === 1, 30_000, 'back to one task')
      const down = back.at - t0
      console.log(
        `[measure] swarm: service create -> published ${created} ms; scale 1->3 -> 3 published ${up} ms (${sinceRunning} ms after the last new task was running); scale 3->1 -> 1 published ${down} ms`,
      )
      expect(sinceRunning).toBeLessThan(1000)
      // Scale-down: the two tasks leave on their kill events, before they stop.
      expect(down).toBeLessThan(1000)
      expect(targetsOn(back, addr)).toEqual(await runningTaskIps(name))
    } finally {
      await src.stop()
    }
  })

  it('uses the service VIP with balancer.swarm.mode=vip, and the tasks of a DNSRR service', async () => {
    const src = runSource(new SwarmSource({ client: api }))
    try {
      const vipAddr = `127.0.0.1:${await freePort()}`
      const rrAddr = `127.0.0.1:${await freePort()}`
      const vipId = await createService(`${RUN}-vip`, vipAddr, ['--replicas', '2'], { 'balancer.swarm.mode': 'vip' })
      await createService(`${RUN}-rr`, rrAddr, ['--endpoint-mode', 'dnsrr', '--replicas', '2'], { 'balancer.swarm.mode': 'vip' })
      const p = await src.rec.waitFor((x) => targetsOn(x, vipAddr).length === 1 && targetsOn(x, rrAddr).length === 2, 30_000, 'the vip and the dnsrr tasks')
      const svc = await api.inspectService(vipId, AbortSignal.timeout(5000))
      const net = await docker('network', 'inspect', '-f', '{{.Id}}', NET)
      const vip = (svc?.Endpoint?.VirtualIPs ?? []).find((v) => v.NetworkID === net)?.Addr?.split('/')[0]
      expect(targetsOn(p, vipAddr)).toEqual([`${vip}:8080`])
      expect(targetsOn(p, rrAddr)).toEqual(await runningTaskIps(`${RUN}-rr`))
      expect(p.problems.find((x) => x.path === `swarm:${RUN}-rr`)?.message).toContain('DNSRR')
    } finally {
      await src.stop()
    }
  })

  it('takes each old task out during a rolling update (service update --force) before its container is signalled, or on that kill event at the latest', async () => {
    const src = runSource(new SwarmSource({ client: api }))
    const name = `${RUN}-roll`
    const kills: Array<{ at: number; task: string }> = []
    const watch = new AbortController()
    try {
      const addr = `127.0.0.1:${await freePort()}`
      await createService(name, addr, ['--replicas', '2'])
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 2, 30_000, 'two tasks')
      const filters = { type: ['container'], event: ['kill'], label: [`com.docker.swarm.service.name=${name}`] }
      const { ended } = await api.events(filters, watch.signal, (o) => {
        const task = (o as DockerEvent).Actor?.Attributes?.['com.docker.swarm.task.id']
        if (task !== undefined) kills.push({ at: Date.now(), task })
      })
      ended.catch(() => {})
      await docker('service', 'update', '--force', '--quiet', name)
      const all = await api.listTasks({ service: [name] }, AbortSignal.timeout(5000))
      const ipOf = new Map(all.map((t) => [t.ID, `${(t.NetworksAttachments?.find((a) => a.Network?.Spec?.Name === NET)?.Addresses?.[0] ?? '').split('/')[0]}:8080`]))
      expect(kills.length).toBeGreaterThanOrEqual(2)
      const delays: number[] = []
      for (const k of kills) {
        const ip = ipOf.get(k.task) ?? ''
        expect(ip).not.toBe(':8080')
        // The publish that took the task out: the first one after the last that had it (before the kill is best).
        let lastWith = -1
        src.rec.sets.forEach((s, i) => {
          if (targetsOn(s, addr).includes(ip)) lastWith = i
        })
        const out: PublishedAt | undefined = src.rec.sets[lastWith + 1]
        expect(out, `task ${k.task} (${ip}) left the published set`).toBeDefined()
        delays.push((out?.at ?? 0) - k.at)
      }
      console.log(`[measure] swarm rolling update: each old task left the published set at ${delays.join(', ')} ms relative to its container's kill event (negative: before it)`)
      for (const d of delays) expect(d).toBeLessThan(500)
      await src.rec.waitFor((p) => targetsOn(p, addr).length === 2, 30_000, 'two new tasks')
      expect(targetsOn(src.rec.latest(), addr)).toEqual(await runningTaskIps(name))
    } finally {
      watch.abort()
      await src.stop()
    }
  })
})
