// compose/compose.yaml as written, brought up with testcontainers'
// DockerComposeEnvironment (on Debian's docker-compose: the standalone
// executable, as no `docker compose` plugin is packaged here): the demo
// containers are served in turn, the API needs the token, `up -d --scale
// hello=4` is followed, and `up -d` with a new balancer image replaces the
// balancer (Compose stops the old container first: the failed requests
// during that gap are measured, not expected to be zero; docs/deploy.md).
//
// Names, ports and images come from the variables the file reads, unique to
// this run; the reaper is off (test/deploy/env.ts): afterAll downs the
// environment and removes what is left by name.
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DockerComposeEnvironment, Wait } from 'testcontainers'
import type { StartedDockerComposeEnvironment } from 'testcontainers'
import { freePort } from '../e2e/harness.ts'
import { until } from '../support/poll.ts'
import { ROOT, curl, deployImages, docker, ensureDocker, removeByPrefix, runId, socketGroup } from './env.ts'
import type { Images } from './env.ts'
import { underLoad } from './load.ts'

const RUN = runId('compose').replaceAll('-', '')
const TOKEN = 'compose-test-token-0123456789'
const FILE = resolve(ROOT, 'compose/compose.yaml')
let images: Images
let env: Record<string, string> = {}
let started: StartedDockerComposeEnvironment | null = null
let httpPort = 0
let apiPort = 0

beforeAll(async () => {
  ensureDocker()
  images = await deployImages()
  httpPort = await freePort()
  apiPort = await freePort()
  env = {
    BALANCER_IMAGE: images.balancer,
    DEMO_IMAGE: images.demo,
    DOCKER_GID: await socketGroup(),
    BALANCER_TOKEN: TOKEN,
    BALANCER_HTTP_PORT: String(httpPort),
    BALANCER_API_PORT: String(apiPort),
    // The file's HTTPS example (hello-tls) listens here, not on 443/8443.
    BALANCER_HTTPS_PORT: String(await freePort()),
    BALANCER_METRICS_PORT: String(await freePort()),
    // Only this project's containers: the daemon is shared, and another
    // test's labelled containers would otherwise join the :80 route.
    BALANCER_DOCKER_CONSTRAINT: `project:${RUN}`,
  }
  started = await new DockerComposeEnvironment(resolve(ROOT, 'compose'), 'compose.yaml')
    .withClientOptions({ executable: { standalone: true, executablePath: 'docker-compose' } })
    .withProjectName(RUN)
    .withEnvironment(env)
    .withWaitStrategy(`${RUN}_balancer_1`, Wait.forLogMessage(/"balancer started"/))
    .up()
  await answering(2)
}, 300_000)

afterAll(async () => {
  await started?.down({ removeVolumes: true, timeout: 5000 }).catch(() => undefined)
  await removeByPrefix(RUN)
}, 120_000)

async function names(n: number): Promise<Set<string>> {
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const r = await curl(`127.0.0.1:${httpPort}/`).catch(() => ({ status: 0, body: '' }))
    if (r.status === 200) seen.add(r.body.trim())
  }
  return seen
}

async function answering(n: number): Promise<void> {
  let last = new Set<string>()
  await until(async () => (last = await names(3 * n)).size === n, 60_000, `${n} demo containers answering (last: ${JSON.stringify([...last])})`)
}

/** Debian's standalone docker-compose, with the file's variables: the commands the file's header shows. */
function runCompose(args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile('docker-compose', ['-f', FILE, '-p', RUN, ...args], { env: { ...process.env, ...env }, timeout: 300_000 }, (err, stdout, stderr) =>
      err === null ? res(stdout.trim()) : rej(new Error(`docker-compose ${args.join(' ')}: ${stderr}`)),
    ),
  )
}

describe('compose/compose.yaml, brought up as written', () => {
  it('serves the demo containers in turn; the API on loopback needs the token', async () => {
    const seen = await names(8)
    expect(seen.size).toBe(2)
    for (const s of seen) expect(s).toMatch(/^Server name: [0-9a-f]{12}$/)
    expect((await curl(`127.0.0.1:${apiPort}/`)).status).toBe(401)
    const conf = await curl('-H', `Authorization: Bearer ${TOKEN}`, `127.0.0.1:${apiPort}/`)
    expect(conf.status).toBe(200)
  })

  it('up -d --scale hello=4: the balancer follows', async () => {
    await runCompose(['up', '-d', '--scale', 'hello=4'])
    await answering(4)
    await runCompose(['up', '-d', '--scale', 'hello=2'])
    await answering(2)
  }, 120_000)

  it('up -d with a new balancer image replaces the balancer; requests during the restart are counted', async () => {
    const next = `${images.balancer}-compose-next`
    const dir = mkdtempSync(join(tmpdir(), 'balancer-next-'))
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${images.balancer}\nLABEL org.balancer.release=next\n`)
    await docker('build', '-q', '-t', next, dir)
    const before = await docker('ps', '-q', '--filter', `name=${RUN}_balancer`)
    env.BALANCER_IMAGE = next
    const r = await underLoad(httpPort, () => runCompose(['up', '-d', '--no-deps', 'balancer']))
    const after = await docker('ps', '-q', '--filter', `name=${RUN}_balancer`)
    expect(after).not.toBe(before)
    expect(await docker('inspect', '-f', '{{.Config.Image}}', after)).toBe(next)
    await answering(2)
    const f = (x: typeof r.keepAlive): string => `${x.ok} ok, ${x.failed} failed ${JSON.stringify(x.failures)}`
    console.log(`[measure] compose up -d with a new balancer image (${r.ms} ms): keep-alive ${f(r.keepAlive)}; new connection per request ${f(r.perRequest)} (Compose stops the old container first)`)
    await docker('rmi', '-f', next).catch(() => '')
  }, 180_000)
})
