// Pending ACME challenges, shared through the store so that whichever
// instance the CA's validation reaches answers it: the instance that
// orders writes each challenge to the store (http-01: the token's key
// authorization; tls-alpn-01: the challenge certificate for the host),
// every instance watches those two directories and hands what it finds to
// its engine, and the orderer tells the CA to validate only once its own
// engine has them and the others have had a moment to catch up.

import type { AcmeChallenges } from '../../engine/types.ts'
import type { SharedSpace } from '../../store/shared.ts'
import { sharedKey, sharedName } from '../../store/shared.ts'
import { sleep } from '../../kv/backoff.ts'

export const HTTP01_DIR = 'acme-http-01'
export const ALPN01_DIR = 'acme-tls-alpn-01'

export interface ChallengeLog {
  error(obj: object, msg: string): void
}

export class ChallengeBook {
  readonly #space: SharedSpace
  readonly #push: (c: AcmeChallenges) => void
  readonly #log: ChallengeLog
  #current: AcmeChallenges = { http01: [], tlsAlpn01: [] }
  #signature = ''

  constructor(space: SharedSpace, push: (c: AcmeChallenges) => void, log: ChallengeLog) {
    this.#space = space
    this.#push = push
    this.#log = log
  }

  async start(signal: AbortSignal): Promise<void> {
    const onChange = (): void => void this.refresh().catch((err: unknown) => this.#fail(err))
    const onError = (err: Error): void => this.#fail(err)
    await Promise.all([this.#space.watch(HTTP01_DIR, signal, onChange, onError), this.#space.watch(ALPN01_DIR, signal, onChange, onError)])
    await this.refresh().catch((err: unknown) => this.#fail(err))
  }

  #fail(err: unknown): void {
    this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'ACME challenges in the store cannot be read')
  }

  /** Reads both directories and hands the engine what changed. */
  async refresh(): Promise<void> {
    const [http, alpn] = await Promise.all([this.#space.list(HTTP01_DIR), this.#space.list(ALPN01_DIR)])
    const http01: Array<[string, string]> = http.map((i) => [sharedName(i.key), i.value])
    const tlsAlpn01: AcmeChallenges['tlsAlpn01'] = []
    for (const i of alpn) {
      try {
        const v = JSON.parse(i.value) as { cert?: unknown; key?: unknown }
        if (typeof v.cert === 'string' && typeof v.key === 'string') tlsAlpn01.push({ host: sharedName(i.key), cert: v.cert, key: v.key })
      } catch {
        // A value that is not ours: ignored.
      }
    }
    const sig = JSON.stringify([http.map((i) => `${i.key}@${i.version}`), alpn.map((i) => `${i.key}@${i.version}`)])
    if (sig === this.#signature) return
    this.#signature = sig
    this.#current = { http01, tlsAlpn01 }
    this.#push(this.#current)
  }

  /** True once this instance's engine has the challenge (http-01 by token, tls-alpn-01 by host). */
  has(kind: 'http-01' | 'tls-alpn-01', id: string): boolean {
    return kind === 'http-01' ? this.#current.http01.some(([t]) => t === id) : this.#current.tlsAlpn01.some((a) => a.host === id)
  }

  /** Waits (bounded) until this instance's engine has it, reading the store again on the way. */
  async waitFor(kind: 'http-01' | 'tls-alpn-01', id: string, ms: number, signal: AbortSignal): Promise<boolean> {
    const end = Date.now() + ms
    while (!this.has(kind, id) && Date.now() < end && !signal.aborted) {
      await this.refresh().catch(() => undefined)
      if (!this.has(kind, id)) await sleep(50, signal)
    }
    return this.has(kind, id)
  }

  publishHttp(token: string, keyAuthorization: string): Promise<string | null> {
    return this.#space.put(sharedKey(HTTP01_DIR, token), keyAuthorization, '*')
  }

  removeHttp(token: string): Promise<boolean> {
    return this.#space.delete(sharedKey(HTTP01_DIR, token))
  }

  publishAlpn(host: string, cert: string, key: string): Promise<string | null> {
    return this.#space.put(sharedKey(ALPN01_DIR, host), JSON.stringify({ cert, key }), '*')
  }

  removeAlpn(host: string): Promise<boolean> {
    return this.#space.delete(sharedKey(ALPN01_DIR, host))
  }
}
