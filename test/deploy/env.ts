// What the deployment tests share: the images users build (the real
// Dockerfile, built once per content by scripts/deploy-images.sh), a real
// Docker Engine and single-node Swarm (scripts/docker-up.sh), curl run as the
// README runs it, and testcontainers for container and compose lifecycles.
//
// testcontainers' reaper container (Ryuk) cannot be pulled here, so it is
// disabled (TESTCONTAINERS_RYUK_DISABLED) and every test removes what it
// created itself, in afterAll, by name prefix or label (cleanup()).
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { GenericContainer } from 'testcontainers'
import { docker, ensureDocker } from '../sources/docker-env.ts'

process.env.TESTCONTAINERS_RYUK_DISABLED = 'true'

const run = promisify(execFile)
export const ROOT = resolve(import.meta.dirname, '../..')
export { docker, ensureDocker }

export interface Images {
  /** The project's image, from the real Dockerfile: balancer-test/balancer:<content hash>. */
  balancer: string
  /** The demo app under the name the stack and compose files use. */
  demo: string
}

let images: Promise<Images> | null = null

/** Builds (or finds) the images; the script caches by content, so only the first call of a run builds. */
export function deployImages(): Promise<Images> {
  images ??= run('bash', [resolve(ROOT, 'scripts/deploy-images.sh')], { maxBuffer: 1 << 20, timeout: 600_000 }).then(({ stdout }) => {
    const v = (k: string): string => {
      const m = new RegExp(`^${k}=(.+)$`, 'm').exec(stdout)
      if (m?.[1] === undefined) throw new Error(`scripts/deploy-images.sh printed no ${k}: ${stdout}`)
      return m[1]
    }
    return { balancer: v('BALANCER_IMAGE'), demo: v('DEMO_IMAGE') }
  })
  return images
}

/** The docker CLI with extra environment (the variables a compose or stack file reads). */
export async function dockerWith(env: Record<string, string>, ...args: string[]): Promise<string> {
  const { stdout } = await run(existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker', args, { maxBuffer: 16 << 20, env: { ...process.env, ...env }, timeout: 300_000 })
  return stdout.trim()
}

/** A name unique to this run, for everything a test creates on the shared daemon. */
export function runId(name: string): string {
  return `dpl-${name}-${process.pid}-${Date.now().toString(36)}`
}

/** Runs curl as the README does; returns the status line's code and the body (-w appends the code). */
export async function curl(...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args], { maxBuffer: 1 << 20 })
  const i = stdout.lastIndexOf('\n')
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) }
}

/** The group that owns the Docker socket: what `--group-add` must give a non-root balancer. */
export async function socketGroup(): Promise<string> {
  const { stdout } = await run('stat', ['-c', '%g', '/var/run/docker.sock'])
  return stdout.trim()
}

/**
 * GenericContainer with the two HostConfig settings the production image
 * test needs and testcontainers has no method for: a read-only root
 * filesystem and supplementary groups (`docker run --read-only --group-add`).
 */
export class BalancerContainer extends GenericContainer {
  withReadOnlyRootfs(): this {
    this.hostConfig.ReadonlyRootfs = true
    return this
  }

  withGroupAdd(...groups: string[]): this {
    this.hostConfig.GroupAdd = groups
    return this
  }
}

/** Removes containers, services, networks, secrets and volumes whose name starts with `prefix`. */
export async function removeByPrefix(prefix: string): Promise<void> {
  const ids = async (...args: string[]): Promise<string[]> => (await docker(...args).catch(() => '')).split('\n').filter((l) => l.startsWith(prefix))
  const stacks = await ids('stack', 'ls', '--format', '{{.Name}}')
  for (const s of stacks) await docker('stack', 'rm', s).catch(() => '')
  const services = await ids('service', 'ls', '--format', '{{.Name}}')
  if (services.length > 0) await docker('service', 'rm', ...services).catch(() => '')
  const containers = await ids('ps', '-a', '--format', '{{.Names}}')
  if (containers.length > 0) await docker('rm', '-f', '-v', ...containers).catch(() => '')
  // Tasks' containers and networks go away asynchronously after `stack rm`: poll until they have.
  const end = Date.now() + 60_000
  for (;;) {
    const left = [...(await ids('ps', '-a', '--format', '{{.Names}}')), ...(await ids('network', 'ls', '--format', '{{.Name}}'))]
    const nets = await ids('network', 'ls', '--format', '{{.Name}}')
    if (nets.length > 0) await docker('network', 'rm', ...nets).catch(() => '')
    if (left.length === 0 || Date.now() > end) break
    const cs = await ids('ps', '-a', '--format', '{{.Names}}')
    if (cs.length > 0) await docker('rm', '-f', '-v', ...cs).catch(() => '')
    await new Promise((r) => setTimeout(r, 250))
  }
  const secrets = await ids('secret', 'ls', '--format', '{{.Name}}')
  if (secrets.length > 0) await docker('secret', 'rm', ...secrets).catch(() => '')
  const volumes = await ids('volume', 'ls', '--format', '{{.Name}}')
  if (volumes.length > 0) await docker('volume', 'rm', ...volumes).catch(() => '')
}
