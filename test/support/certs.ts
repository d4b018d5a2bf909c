// Certificates for TLS tests, made with Debian's openssl: a CA of the test's
// own and leaf certificates it signs for any names and validity dates
// (`openssl ca`, which takes explicit start and end dates, so expired and
// short-lived certificates are as easy as good ones). P-256 keys, like the
// ones ACME CAs issue.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certFileId } from '../../src/compiler/compile.ts'
import type { CertEntry } from '../../src/engine/types.ts'

export interface IssuedCert {
  /** Epoch ms. */
  notAfter: number
  certFile: string
  keyFile: string
  /** PEM: the leaf then the CA (a chain as a server sends it). */
  cert: string
  key: string
  names: string[]
}

const CA_CNF = `[ ca ]
default_ca = d
[ d ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[ p ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
`

/** `openssl ca` date: YYYYMMDDHHMMSSZ. */
function caDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`
}

function run(cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export class TestCa {
  readonly dir: string
  /** The CA certificate (PEM file): what a client trusts. */
  readonly caFile: string
  readonly caPem: string
  #n = 0

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'balancer-ca-'))
    writeFileSync(join(this.dir, 'ca.cnf'), CA_CNF)
    writeFileSync(join(this.dir, 'index.txt'), '')
    writeFileSync(join(this.dir, 'serial'), '1000\n')
    run(this.dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3', '-subj', '/CN=Balancer Test CA', '-keyout', 'ca.key', '-out', 'ca.pem'])
    this.caFile = join(this.dir, 'ca.pem')
    this.caPem = readFileSync(this.caFile, 'utf8')
  }

  /** A leaf for `names` (DNS names or IPv4 addresses), valid from notBefore (default an hour ago) to notAfter (default in two days). */
  issue(names: string[], opts: { notBefore?: Date; notAfter?: Date; rsa?: boolean } = {}): IssuedCert {
    const n = ++this.#n
    const base = `leaf${n}`
    const san = names.map((x) => (/^[0-9.]+$/.test(x) ? `IP:${x}` : `DNS:${x}`)).join(',')
    const key = opts.rsa === true ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
    run(this.dir, ['req', '-new', ...key, '-nodes', '-subj', `/CN=${names[0] ?? 'none'}`, '-addext', `subjectAltName=${san}`, '-keyout', `${base}.key`, '-out', `${base}.csr`])
    const from = opts.notBefore ?? new Date(Date.now() - 3_600_000)
    const to = opts.notAfter ?? new Date(Date.now() + 2 * 86_400_000)
    run(this.dir, [
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-extensions',
      'leaf',
      '-cert',
      'ca.pem',
      '-keyfile',
      'ca.key',
      '-in',
      `${base}.csr`,
      '-out',
      `${base}.crt`,
      '-startdate',
      caDate(from),
      '-enddate',
      caDate(to),
      '-notext',
    ])
    const leaf = readFileSync(join(this.dir, `${base}.crt`), 'utf8')
    const cert = `${leaf.trim()}\n${this.caPem.trim()}\n`
    const certFile = join(this.dir, `${base}.pem`)
    writeFileSync(certFile, cert)
    const keyFile = join(this.dir, `${base}.key`)
    return { certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'), names: names.map((x) => x.toLowerCase()), notAfter: Math.floor(to.getTime() / 1000) * 1000 }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** The engine's view of an issued certificate, under the id a listener's TlsPlan uses for its files. */
export function certEntry(c: IssuedCert): CertEntry {
  return { id: certFileId(c.certFile, c.keyFile), cert: c.cert, key: c.key, names: c.names, notAfter: c.notAfter }
}
