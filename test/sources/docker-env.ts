// The real Docker Engine for the discovery tests: scripts/docker-up.sh brings
// it up (installs Debian's docker.io, starts dockerd, initialises a
// single-node Swarm); images are built here FROM scratch with Debian's
// busybox-static, never pulled. Everything a test creates carries the label
// balancer-test=<run id> and is removed by cleanup().
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { until } from '../support/poll.ts'
import { DockerClient } from '../../src/docker-api/client.ts'
import { parseEndpoint } from '../../src/docker-api/endpoint.ts'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '../..')
/** Debian's client when present: the same version as the daemon docker-up.sh starts. */
export const DOCKER_BIN = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker'

export const WEB_IMAGE = 'balancer-test/web:1'
export const WEB_HEALTH_IMAGE = 'balancer-test/web-health:1'
/** glibc and busybox, FROM scratch: runs the project's own Node (node_modules/node) with the repository mounted at /app. */
export const RUNTIME_IMAGE = 'balancer-test/node-runtime:1'
export const NODE_IN_IMAGE = '/app/node_modules/node/bin/node'
export const REPO = ROOT

/** Fails (never skips) when the engine cannot be brought up. */
export function ensureDocker(): void {
  execFileSync('bash', [join(ROOT, 'scripts/docker-up.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 })
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run(DOCKER_BIN, args, { maxBuffer: 16 << 20, env: { ...process.env, DOCKER_BUILDKIT: '0' } })
  return stdout.trim()
}

export function client(endpoint = 'unix:///var/run/docker.sock'): DockerClient {
  const ep = parseEndpoint(endpoint, {})
  if ('error' in ep) throw new Error(ep.error)
  return new DockerClient({ endpoint: ep })
}

// The web server: serves $NAME (default: the hostname) at / on $PORT (8080).
// On SIGTERM it keeps serving for $DRAIN seconds (default 1), as an app that
// drains does, then exits. /tmp/healthy exists unless $UNHEALTHY=1; the
// health image's HEALTHCHECK tests it, so `docker exec rm /tmp/healthy`
// turns a container unhealthy.
const WEB_SH = `#!/bin/sh
mkdir -p /www /tmp
echo "\${NAME:-$(hostname)}" > /www/index.html
[ "\${UNHEALTHY:-0}" = 1 ] || touch /tmp/healthy
httpd -f -p "\${PORT:-8080}" -h /www &
pid=$!
trap 'sleep "\${DRAIN:-1}"; kill $pid; exit 0' TERM INT
wait $pid
`

let built = false
let runtimeBuilt = false

/** The shared libraries the project's Node binary needs, from ldd. */
function nodeLibraries(): string[] {
  const out = execFileSync('ldd', [join(ROOT, 'node_modules/node/bin/node')], { encoding: 'utf8' })
  return [...out.matchAll(/(\/[^\s]+\.so[^\s]*)/g)].map((m) => m[1] ?? '').filter((p) => p !== '')
}

/** Builds RUNTIME_IMAGE: busybox plus the libraries of node_modules/node/bin/node (the binary itself is mounted). */
export async function buildRuntimeImage(): Promise<void> {
  if (runtimeBuilt) return
  const dir = mkdtempSync(join(tmpdir(), 'balancer-rt-'))
  copyFileSync('/bin/busybox', join(dir, 'busybox'))
  const lines = ['FROM scratch', 'COPY busybox /bin/busybox', 'RUN ["/bin/busybox", "--install", "-s", "/bin"]', 'RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/data"]']
  nodeLibraries().forEach((lib, i) => {
    copyFileSync(lib, join(dir, `lib${i}`))
    lines.push(`COPY lib${i} ${lib}`)
  })
  writeFileSync(join(dir, 'Dockerfile'), `${lines.join('\n')}\n`)
  await docker('build', '-q', '-t', RUNTIME_IMAGE, dir)
  runtimeBuilt = true
}

/** Builds the test images from /bin/busybox (busybox-static); cached by the daemon after the first build. */
export async function buildImages(): Promise<void> {
  if (built) return
  const dir = mkdtempSync(join(tmpdir(), 'balancer-img-'))
  copyFileSync('/bin/busybox', join(dir, 'busybox'))
  writeFileSync(join(dir, 'web.sh'), WEB_SH)
  chmodSync(join(dir, 'web.sh'), 0o755)
  const base = ['FROM scratch', 'COPY busybox /bin/busybox', 'RUN ["/bin/busybox", "--install", "-s", "/bin"]', 'COPY web.sh /web.sh', 'EXPOSE 8080', 'STOPSIGNAL SIGTERM', 'CMD ["/web.sh"]']
  writeFileSync(join(dir, 'Dockerfile.web'), `${base.join('\n')}\n`)
  writeFileSync(join(dir, 'Dockerfile.health'), `${[...base, 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["/bin/test", "-f", "/tmp/healthy"]'].join('\n')}\n`)
  await docker('build', '-q', '-f', join(dir, 'Dockerfile.web'), '-t', WEB_IMAGE, dir)
  await docker('build', '-q', '-f', join(dir, 'Dockerfile.health'), '-t', WEB_HEALTH_IMAGE, dir)
  built = true
}

/** A label value unique to this test file's run. */
export function runId(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}`
}

/** Removes every container, service and network labelled balancer-test=<id>. */
export async function cleanup(id: string): Promise<void> {
  const f = `label=balancer-test=${id}`
  const services = (await docker('service', 'ls', '-q', '--filter', f)).split('\n').filter(Boolean)
  if (services.length > 0) await docker('service', 'rm', ...services).catch(() => '')
  const containers = (await docker('ps', '-aq', '--filter', f)).split('\n').filter(Boolean)
  if (containers.length > 0) await docker('rm', '-f', ...containers).catch(() => '')
  // Service tasks' containers go away asynchronously; networks in use cannot be removed until then.
  await until(
    async () => {
      const nets = (await docker('network', 'ls', '-q', '--filter', f)).split('\n').filter(Boolean)
      if (nets.length === 0) return true
      await docker('network', 'rm', ...nets).catch(() => '')
      return false
    },
    10_000,
    `the networks labelled ${f} to be removed`,
  ).catch(() => undefined) // as before: a network the daemon still holds is left, not a failure of the test that made it
}
