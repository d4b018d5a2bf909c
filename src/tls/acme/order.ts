// One ACME order (RFC 8555), done with acme-client's auto(): account (its
// key kept in the store, the same for every instance), order, one
// challenge per host written to the store for whichever instance the CA
// reaches, finalize with a fresh P-256 key, download. The CA's own check of
// our challenge is what validates it: acme-client's self-check is off (it
// would fetch from the real port 80 of the host, which need not be this
// one).
//
// Own code beside acme-client only for what it leaves to its user: where
// the account key and the challenges live, and the directory's TLS trust.

import { createHash } from 'node:crypto'
import { Agent, request } from 'node:https'
import type { Client } from 'acme-client'
import type { SharedSpace } from '../../store/shared.ts'
import { sharedKey } from '../../store/shared.ts'
import { sleep } from '../../kv/backoff.ts'
import type { ChallengeBook } from './challenges.ts'

export const ACCOUNT_DIR = 'acme-account'

type AcmeLib = typeof import('acme-client')
let lib: AcmeLib | null = null
/**
 * acme-client (with axios under it) takes about 0.3 s of CPU to load:
 * loaded by the first order, not at every start of every instance.
 */
async function acmeLib(): Promise<AcmeLib> {
  // A CommonJS module: its exports are the namespace's default.
  const m = (await import('acme-client')) as AcmeLib & { default?: AcmeLib }
  lib ??= m.default ?? m
  return lib
}

export interface AcmeDirectory {
  /** The directory URL. */
  url: string
  /** PEM CA certificates to trust for the directory's HTTPS (a test CA); null: the system's. */
  ca: string | null
}

export interface OrderRequest {
  hosts: string[]
  email: string
  challenge: 'http-01' | 'tls-alpn-01'
}

export interface OrderDeps {
  space: SharedSpace
  book: ChallengeBook
  directory: AcmeDirectory
  /** How long the orderer waits, once its own engine has a challenge, for the other instances' to have it. */
  settleMs: number
  /** Aborts when the lease guarding the order is lost. */
  signal: AbortSignal
  log: { info(obj: object, msg: string): void }
}

let configuredCa: string | null | undefined
/**
 * acme-client's HTTP client is one per process: it trusts the directory's
 * CAs from the first order on. Its own retries of a failed request (five,
 * 5 to 25 s apart, the same for every instance) are off: a failed order is
 * retried by the manager, with backoff and jitter shared through the store.
 * Bad nonces are still retried at once (a different mechanism). No request
 * waits more than 30 s.
 */
function trust(acme: AcmeLib, ca: string | null): void {
  if (configuredCa === ca) return
  configuredCa = ca
  acme.axios.defaults.httpsAgent = ca === null ? undefined : new Agent({ ca, keepAlive: true })
  acme.axios.defaults.timeout = 30_000
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings
  settings.retryMaxAttempts = 0
}

interface Account {
  directory: string
  email: string
  key: string
  /** The account's URL at the CA, once registered; null before (or when the CA forgot it). */
  url: string | null
  created: string
}

/** The store key of the account for a directory and contact: one account each, shared by every instance. */
function accountId(directoryUrl: string, email: string): string {
  return sharedKey(ACCOUNT_DIR, createHash('sha256').update(`${directoryUrl}\n${email}`).digest('hex').slice(0, 32))
}

/** The account for this directory and contact: made by the first instance that needs it, then used by all. */
export async function account(space: SharedSpace, directoryUrl: string, email: string): Promise<{ value: Account; version: string }> {
  const id = accountId(directoryUrl, email)
  for (let attempt = 0; attempt < 5; attempt++) {
    const have = await space.get(id)
    if (have !== null) {
      const v = JSON.parse(have.value) as Partial<Account>
      if (typeof v.key === 'string') return { value: { directory: directoryUrl, email, key: v.key, url: typeof v.url === 'string' ? v.url : null, created: v.created ?? '' }, version: have.version }
    }
    const acme = await acmeLib()
    const fresh: Account = { directory: directoryUrl, email, key: (await acme.crypto.createPrivateEcdsaKey('P-256')).toString(), url: null, created: new Date().toISOString() }
    // Created once: an instance that loses the race uses the winner's key.
    const version = await space.put(id, JSON.stringify(fresh), have?.version ?? null)
    if (version !== null) return { value: fresh, version }
  }
  throw new Error('the ACME account kept changing in the store')
}

async function saveAccountUrl(space: SharedSpace, a: Account, url: string | null): Promise<void> {
  if (a.url === url) return
  await space.put(accountId(a.directory, a.email), JSON.stringify({ ...a, url }), '*')
}

function hasAccountUrl(client: Client): boolean {
  try {
    client.getAccountUrl()
    return true
  } catch {
    return false
  }
}

/** Why the directory cannot be fetched (`ECONNREFUSED`, `timeout`, `HTTP 503`); `answers` when it can. */
function reachability(dir: AcmeDirectory): Promise<string> {
  return new Promise((resolve) => {
    const req = request(dir.url, { timeout: 10_000, ...(dir.ca === null ? {} : { ca: dir.ca }) }, (res) => {
      res.resume()
      resolve(res.statusCode === 200 ? 'answers' : `HTTP ${res.statusCode ?? 0}`)
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })))
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
    req.end()
  })
}

/**
 * acme-client loses a network error on its way out (it reports a TypeError
 * from its own error handling instead): say what happened.
 */
async function explained(err: unknown, dir: AcmeDirectory): Promise<unknown> {
  if (!(err instanceof TypeError)) return err
  return new Error(`the ACME directory ${dir.url} cannot be reached: ${await reachability(dir)}`)
}

/** Orders a certificate for req.hosts; resolves with its chain and key (PEM). */
export async function order(req: OrderRequest, deps: OrderDeps): Promise<{ cert: string; key: string }> {
  const acme = await acmeLib()
  trust(acme, deps.directory.ca)
  const acct = (await account(deps.space, deps.directory.url, req.email)).value
  const client = new acme.Client({
    directoryUrl: deps.directory.url,
    accountKey: acct.key,
    // Registered before: auto() then skips the registration (which a CA may refuse to repeat as an empty update).
    ...(acct.url === null ? {} : { accountUrl: acct.url }),
    backoffAttempts: 20,
    backoffMin: 250,
    backoffMax: 3000,
  })
  if (acct.url === null) {
    // Registered once, and its URL kept at once: an instance that takes over an order skips registering again.
    try {
      await client.createAccount({ termsOfServiceAgreed: true, ...(req.email === '' ? {} : { contact: [`mailto:${req.email}`] }) })
    } catch (err) {
      // The CA knew the key already (HTTP 200, its URL now known); the update acme-client then tries is not needed.
      if (!hasAccountUrl(client)) throw await explained(err, deps.directory)
    }
    await saveAccountUrl(deps.space, acct, client.getAccountUrl())
    acct.url = client.getAccountUrl()
  }
  const [key, csr] = await acme.crypto.createCsr({ commonName: req.hosts[0] as string, altNames: req.hosts }, await acme.crypto.createPrivateEcdsaKey('P-256'))
  const signal = deps.signal
  let cert: string
  try {
    cert = await client.auto({
      csr,
      ...(req.email === '' ? {} : { email: req.email }),
      termsOfServiceAgreed: true,
      skipChallengeVerification: true,
      challengePriority: [req.challenge],
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (signal.aborted) throw new Error('the order lease was lost')
        const host = authz.identifier.value
        if (challenge.type === 'http-01') {
          await deps.book.publishHttp(challenge.token, keyAuthorization)
          if (!(await deps.book.waitFor('http-01', challenge.token, 10_000, signal))) throw new Error(`the http-01 challenge for ${host} did not reach this instance's engine`)
        } else {
          const [ckey, ccert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization)
          await deps.book.publishAlpn(host, ccert.toString(), ckey.toString())
          if (!(await deps.book.waitFor('tls-alpn-01', host, 10_000, signal))) throw new Error(`the tls-alpn-01 challenge for ${host} did not reach this instance's engine`)
        }
        await sleep(deps.settleMs, signal)
        if (signal.aborted) throw new Error('the order lease was lost')
        deps.log.info({ host, challenge: challenge.type }, 'ACME challenge ready; asking the CA to validate')
      },
      challengeRemoveFn: async (authz, challenge) => {
        if (challenge.type === 'http-01') await deps.book.removeHttp(challenge.token)
        else await deps.book.removeAlpn(authz.identifier.value)
      },
    })
  } catch (err) {
    if (err instanceof TypeError) throw await explained(err, deps.directory)
    // A CA that no longer knows the account (reset, or another CA at the same URL): register again next time.
    if (acct.url !== null && /accountDoesNotExist|account does not exist|unknown account|no such account/i.test(`${(err as Error).message} ${String((err as { type?: unknown }).type ?? '')}`))
      await saveAccountUrl(deps.space, acct, null)
    throw err
  }
  await saveAccountUrl(deps.space, acct, client.getAccountUrl())
  return { cert, key: key.toString() }
}
