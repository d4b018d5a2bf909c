// The Docker endpoint over TCP with TLS, as DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
// configure the docker CLI: a real TLS listener (client certificate required)
// in front of the daemon's socket, certificates made with openssl. Also runs
// the sources the way main.ts does, through startSources.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:tls'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../support/poll.ts'
import { DockerClient } from '../../src/docker-api/client.ts'
import { DOCKER_FROM_ENV, loadTls, parseEndpoint } from '../../src/docker-api/endpoint.ts'
import { DockerSource } from '../../src/sources/docker/source.ts'
import { startSources } from '../../src/sources/start.ts'
import type { Server } from '../../src/model/types.ts'
import { freePort } from '../e2e/harness.ts'
import { WEB_IMAGE, buildImages, cleanup, docker, ensureDocker, runId } from './docker-env.ts'
import { targetsOn } from './recorder.ts'

const RUN = runId('tls')
const certs = mkdtempSync(join(tmpdir(), 'balancer-tls-'))
let server: TlsServer
let port = 0
const sockets = new Set<TLSSocket>()

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: certs, stdio: ['ignore', 'ignore', 'pipe'] })
}

beforeAll(async () => {
  ensureDocker()
  await buildImages()
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca-key.pem', '-out', 'ca.pem')
  writeFileSync(join(certs, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  writeFileSync(join(certs, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  for (const who of ['server', 'client']) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}-key.pem`, '-out', `${who}.csr`)
    openssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`, '-out', `${who}-cert.pem`)
  }
  // DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem (the client's).
  writeFileSync(join(certs, 'cert.pem'), readFileSync(join(certs, 'client-cert.pem')))
  writeFileSync(join(certs, 'key.pem'), readFileSync(join(certs, 'client-key.pem')))
  server = createServer(
    { key: readFileSync(join(certs, 'server-key.pem')), cert: readFileSync(join(certs, 'server-cert.pem')), ca: readFileSync(join(certs, 'ca.pem')), requestCert: true, rejectUnauthorized: true },
    (down) => {
      sockets.add(down)
      const up = createConnection('/var/run/docker.sock')
      down.pipe(up).pipe(down)
      const drop = (): void => {
        down.destroy()
        up.destroy()
        sockets.delete(down)
      }
      down.on('error', drop).on('close', drop)
      up.on('error', drop).on('close', drop)
    },
  )
  server.on('tlsClientError', () => {})
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as { port: number }).port
}, 300_000)

afterAll(async () => {
  for (const s of sockets) s.destroy()
  server?.close()
  await cleanup(RUN)
}, 120_000)

const env = (): Record<string, string> => ({ DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs })

describe('docker endpoint over TCP with TLS', () => {
  it('reads ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH and lists through the TLS endpoint', async () => {
    const ep = parseEndpoint(`tcp://127.0.0.1:${port}`, env())
    if ('error' in ep) throw new Error(ep.error)
    expect(ep.kind === 'tcp' && ep.tls?.verify).toBe(true)
    const client = new DockerClient({ endpoint: loadTls(ep, env()) })
    try {
      const addr = `127.0.0.1:${await freePort()}`
      await docker('run', '-d', '--name', `${RUN}-a`, '--label', 'balancer.enable=true', '--label', `balancer.address=${addr}`, '--label', `balancer-test=${RUN}`, WEB_IMAGE)
      const listed = await new DockerSource({ client }).once(AbortSignal.timeout(10_000))
      expect(listed.find((t) => t.name === `${RUN}-a`)?.server?.address).toBe(addr)
    } finally {
      client.close()
    }
  })

  it('refuses a daemon whose certificate the CA did not sign, and a client without a certificate is refused', async () => {
    const ep = parseEndpoint(`tcp://127.0.0.1:${port}`, env())
    if ('error' in ep || ep.kind !== 'tcp') throw new Error('tcp endpoint expected')
    const wrongCa = new DockerClient({ endpoint: { ...ep, tls: { verify: true, ca: readFileSync(join(certs, 'client-cert.pem')) } } })
    await expect(wrongCa.listContainers({}, AbortSignal.timeout(5000))).rejects.toThrow()
    wrongCa.close()
    const noCert = new DockerClient({ endpoint: { ...ep, tls: { verify: true, ca: readFileSync(join(certs, 'ca.pem')) } } })
    await expect(noCert.listContainers({}, AbortSignal.timeout(5000))).rejects.toThrow()
    noCert.close()
  })

  it('startSources with --docker alone follows the docker CLI environment (DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) and publishes to the caller, names included', async () => {
    const published: Array<{ origin: string; servers: Server[]; names: string[] }> = []
    const reports: Array<Error | null> = []
    const addr = `127.0.0.1:${await freePort()}`
    const running = startSources(
      { docker: DOCKER_FROM_ENV, swarm: false, dockerResyncMs: 30_000 },
      pino({ level: 'silent' }),
      (origin, servers, detail) => published.push({ origin, servers, names: detail.names }),
      (_origin, err) => reports.push(err),
      { ...env(), DOCKER_HOST: `tcp://127.0.0.1:${port}` },
    )
    try {
      expect(running.origins).toEqual(['docker'])
      await docker('run', '-d', '--name', `${RUN}-b`, '--label', 'balancer.enable=true', '--label', `balancer.address=${addr}`, '--label', `balancer-test=${RUN}`, WEB_IMAGE)
      await until(() => published.some((p) => targetsOn({ at: 0, servers: p.servers, names: [], problems: [] }, addr).length === 1), 5000, 'the container published')
      const hit = published.find((p) => p.servers.some((s) => s.address === addr))
      expect(hit?.origin).toBe('docker')
      expect(hit?.names).toContain(`${RUN}-b`)
      expect(reports.filter((e) => e !== null)).toEqual([])
    } finally {
      await running.stop()
    }
  })
})
