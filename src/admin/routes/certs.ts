// Certificates: GET /cert (every one the balancer knows), GET|PUT|DELETE
// /cert/{name} (one kept in the store). PUT takes a certificate chain and
// its key, as JSON {"Cert", "Key"} or as PEM text holding both; it is
// checked before it is stored (E_TLS_CERT naming the field and the
// problem) and then served by every instance sharing the store. No answer
// ever carries a private key.

import type { FastifyInstance } from 'fastify'
import { BalancerError, ErrorCode } from '../../model/errors.ts'
import type { Problem } from '../../model/errors.ts'
import { isPlainObject, readFields, readString } from '../../model/fields.ts'
import type { CertCatalog, CertView } from '../../tls/catalog.ts'
import { listCerts } from '../../tls/catalog.ts'
import { checkCertName } from '../../tls/stored.ts'
import { PemText } from '../body.ts'
import { sendTagged } from '../etag.ts'

interface CertParams {
  name: string
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/

/** The certificate chain and key a PUT carries. */
function readBody(body: unknown): { cert: string; key: string } {
  if (body instanceof PemText) {
    const certs = body.text.match(CERT_BLOCK) ?? []
    const key = KEY_BLOCK.exec(body.text)?.[0]
    const problems: Problem[] = []
    if (certs.length === 0) problems.push({ path: 'body', message: 'holds no PEM certificate ("-----BEGIN CERTIFICATE-----")' })
    if (key === undefined) problems.push({ path: 'body', message: 'holds no PEM private key ("-----BEGIN PRIVATE KEY-----"); send the certificate chain and its key together' })
    if (problems.length > 0) throw new BalancerError(ErrorCode.TlsCert, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
    return { cert: `${certs.join('\n')}\n`, key: `${key}\n` }
  }
  const problems: Problem[] = []
  if (!isPlainObject(body)) {
    throw new BalancerError(ErrorCode.Validation, 'body: must be {"Cert": "<PEM chain>", "Key": "<PEM key>"} or PEM text', [
      { path: 'body', message: 'must be {"Cert": "<PEM chain>", "Key": "<PEM key>"} or PEM text' },
    ])
  }
  const f = readFields(body, 'body', ['Cert', 'Key'] as const, problems) ?? {}
  const cert = readString(f.Cert, 'body.Cert', null, problems)
  const key = readString(f.Key, 'body.Key', null, problems)
  if (problems.length > 0 || cert === null || key === null) throw new BalancerError(ErrorCode.Validation, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
  return { cert, key }
}

function notFound(name: string): BalancerError {
  return new BalancerError(ErrorCode.NotFound, `no certificate "${name}" in the store; GET /cert lists them`)
}

export function certRoutes(app: FastifyInstance, catalog: () => CertCatalog): void {
  app.get('/cert', async (req, reply) => {
    const c = catalog()
    // Read again: another instance may have stored or renewed one a moment ago.
    await c.stored.refresh()
    const list = listCerts(c)
    return sendTagged(req, reply, 200, list)
  })

  app.get<{ Params: CertParams }>('/cert/:name', async (req, reply) => {
    const name = req.params.name
    const c = catalog()
    await c.stored.refresh()
    const hit = listCerts(c).find((c) => c.name === name && c.origin !== 'file')
    if (hit === undefined) throw notFound(name)
    return sendTagged(req, reply, 200, hit)
  })

  app.put<{ Params: CertParams }>('/cert/:name', async (req, reply) => {
    const name = req.params.name
    checkCertName(name, 'path.name')
    const { cert, key } = readBody(req.body)
    const c = catalog()
    const r = await c.stored.put(name, cert, key, 'api', { cert: req.body instanceof PemText ? 'body' : 'body.Cert', key: req.body instanceof PemText ? 'body' : 'body.Key' })
    const v = listCerts(c).find((x) => x.name === name && x.origin !== 'file') as CertView
    if (r.created) reply.header('location', `/cert/${encodeURIComponent(name)}`)
    return sendTagged(req, reply, r.created ? 201 : 200, v)
  })

  app.delete<{ Params: CertParams }>('/cert/:name', async (req, reply) => {
    const name = req.params.name
    if (!(await catalog().stored.delete(name))) throw notFound(name)
    return reply.code(204).send()
  })
}
