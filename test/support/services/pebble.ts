// Debian's Pebble (the ACME test CA) for one test file, with real
// validation: pebble-challtestsrv answers every DNS name with 127.0.0.1, and
// Pebble's `httpPort`/`tlsPort` point at the balancer's listeners, so the
// CA's http-01 and tls-alpn-01 checks reach the balancer. Free ports are
// taken first (Pebble reads them from its config file); its own HTTPS
// listener gets a certificate made here, which the balancer is told to
// trust with --acme-ca. PEBBLE_VA_NOSLEEP=1 removes its random validation
// delay.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts } from './ports.ts'
import { retryUntil, ServiceProcess } from './process.ts'

export interface PebbleOptions {
  /** Where Pebble sends http-01 validation (a plain listener of the balancer). */
  httpPort: number
  /** Where Pebble sends tls-alpn-01 validation (a TLS listener of the balancer). */
  tlsPort: number
  /** Lifetime of the certificates it issues, in seconds (Pebble's default: years). */
  validitySeconds?: number
  /** PEBBLE_WFE_NONCEREJECT: percent of good nonces refused as bad. */
  nonceReject?: number
  /** Listen on this port (a restart keeps the directory URL); default: a free one. */
  port?: number
  /** The address its DNS gives every name (where validation goes); default 127.0.0.1. */
  resolveTo?: string
}

export interface Pebble {
  /** `https://localhost:PORT/dir`. */
  readonly directory: string
  readonly port: number
  /** The CA file the balancer trusts for the directory (--acme-ca). */
  readonly listenerCaFile: string
  /** The root that signs what it issues (changes at every start). */
  root(): Promise<string>
  start(): Promise<void>
  stop(): Promise<void>
  close(): Promise<void>
}

function get(port: number, path: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername: 'localhost', ca, timeout: 2000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

export async function startPebble(o: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'balancer-pebble-'))
  const [listenFree, management, dns, chall] = (await freePorts(4)) as [number, number, number, number]
  const listen = o.port ?? listenFree
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      'pebble.key',
      '-out',
      'pebble.pem',
    ],
    { cwd: dir, stdio: 'ignore' },
  )
  const listenerCaFile = join(dir, 'pebble.pem')
  const ca = readFileSync(listenerCaFile, 'utf8')
  writeFileSync(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: listenerCaFile,
        privateKey: join(dir, 'pebble.key'),
        httpPort: o.httpPort,
        tlsPort: o.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(o.validitySeconds === undefined ? {} : { certificateValidityPeriod: o.validitySeconds }),
      },
    }),
  )
  const challtest = new ServiceProcess({
    name: 'pebble-challtestsrv',
    bin: '/usr/bin/pebble-challtestsrv',
    pkg: 'pebble',
    args: ['-defaultIPv4', o.resolveTo ?? '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${chall}`],
    cwd: dir,
    logFile: join(dir, 'challtestsrv.log'),
    ready: () =>
      retryUntil(
        'pebble-challtestsrv',
        10_000,
        () =>
          new Promise<boolean>((resolve, reject) => {
            const r = httpRequest({ host: '127.0.0.1', port: chall, path: '/' }, (res) => {
              res.resume()
              resolve(true)
            })
            r.on('error', reject)
            r.end()
          }),
      ),
  })
  const env: Record<string, string> = { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: String(o.nonceReject ?? 0) }
  const pebble = new ServiceProcess({
    name: 'pebble',
    bin: '/usr/bin/pebble',
    pkg: 'pebble',
    args: ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns}`],
    cwd: dir,
    logFile: join(dir, 'pebble.log'),
    env,
    ready: () => retryUntil('pebble', 15_000, async () => (await get(listen, '/dir', ca)).status === 200),
  })
  await challtest.start()
  await pebble.start()
  return {
    directory: `https://localhost:${listen}/dir`,
    port: listen,
    listenerCaFile,
    async root() {
      const r = await get(management, '/roots/0', ca)
      if (r.status !== 200) throw new Error(`pebble /roots/0: ${r.status}`)
      return r.body
    },
    start: () => pebble.start(),
    stop: () => pebble.stop(),
    async close() {
      await pebble.close()
      await challtest.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
