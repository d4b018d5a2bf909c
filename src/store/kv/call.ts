// Every call a KV store makes to its server goes through call(): bounded by a
// deadline, failures turned into E_STORE_UNAVAILABLE naming the store (never
// its credentials), and the outcome recorded in the store's health.

import { BalancerError, ErrorCode } from '../../model/errors.ts'

export type ConnectionState = 'connecting' | 'connected' | 'unreachable'

export interface StoreHealth {
  state: ConnectionState
  /** Epoch ms of the last change of state. */
  since: number
  /** Why it is unreachable; null when connected. */
  detail: string | null
}

/** The connection state of one store, as its calls and its watcher see it. */
export class ConnectionHealth {
  #state: StoreHealth = { state: 'connecting', since: Date.now(), detail: null }

  get(): StoreHealth {
    return { ...this.#state }
  }

  up(): void {
    if (this.#state.state !== 'connected') this.#state = { state: 'connected', since: Date.now(), detail: null }
  }

  down(detail: string): void {
    if (this.#state.state !== 'unreachable') this.#state = { state: 'unreachable', since: Date.now(), detail }
    else this.#state.detail = detail
  }
}

export interface CallContext {
  /** `etcd`, `consul`, `zookeeper`. */
  kind: string
  /** The store URL without credentials. */
  location: string
  timeoutMs: number
  health: ConnectionHealth
}

/** A failure to reach or use the store; the message names the store, not its secrets. */
export function unavailable(ctx: Pick<CallContext, 'kind' | 'location'>, what: string, err: unknown): BalancerError {
  if (err instanceof BalancerError && err.code === ErrorCode.StoreUnavailable) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new BalancerError(ErrorCode.StoreUnavailable, `${ctx.kind} store ${ctx.location}: ${what} failed: ${detail}`)
}

/**
 * Runs one store operation with the context's deadline. Resolves or rejects
 * within timeoutMs (the operation itself may still complete later on the
 * server: writes are atomic, so it is then all or nothing, and the watcher
 * reports it). BalancerErrors other than E_STORE_UNAVAILABLE pass through.
 */
export async function call<T>(ctx: CallContext, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ctx.timeoutMs} ms`)), ctx.timeoutMs)
  })
  try {
    const out = await Promise.race([fn(), deadline])
    ctx.health.up()
    return out
  } catch (err) {
    if (err instanceof BalancerError && err.code !== ErrorCode.StoreUnavailable) throw err
    const e = unavailable(ctx, what, err)
    ctx.health.down(e.message)
    throw e
  } finally {
    clearTimeout(timer)
  }
}
