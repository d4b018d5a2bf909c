// The Consul STAND-IN's /v1/txn (see consul-standin.ts): the KV verbs, run
// all-or-nothing on a copy of the store at one new index, with Consul's
// result and error shapes and messages.

export interface Entry {
  key: string
  value: Buffer | null
  flags: number
  createIndex: number
  modifyIndex: number
  /** The session holding the key's lock (sessions: consul-standin.ts). */
  session?: string
  lockIndex?: number
}

export interface TxnOp {
  KV?: { Verb?: string; Key?: string; Value?: string | null; Flags?: number; Index?: number }
}

export const MAX_TXN_OPS = 64

const READ_VERBS = ['get', 'get-tree', 'check-index', 'check-not-exists']

export interface TxnOutcome {
  /** The store after the transaction (a copy; the caller keeps it only when errors is empty). */
  kv: Map<string, Entry>
  deleted: string[]
  results: Array<{ KV: Record<string, unknown> }>
  errors: Array<{ OpIndex: number; What: string }>
  /** False for a transaction of reads and checks only: the index does not move. */
  writes: boolean
}

/** Entry as Consul's JSON shows it (Value base64, null when empty). */
export function toJson(e: Entry): Record<string, unknown> {
  return {
    LockIndex: e.lockIndex ?? 0,
    Key: e.key,
    Flags: e.flags,
    Value: e.value === null ? null : e.value.toString('base64'),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
    ...(e.session === undefined ? {} : { Session: e.session }),
  }
}

export function runTxn(current: ReadonlyMap<string, Entry>, at: number, ops: readonly TxnOp[]): TxnOutcome {
  const kv = new Map([...current].map(([k, e]) => [k, { ...e }]))
  const out: TxnOutcome = { kv, deleted: [], results: [], errors: [], writes: ops.some((o) => !READ_VERBS.includes(o.KV?.Verb ?? '')) }
  const fail = (i: number, what: string): void => void out.errors.push({ OpIndex: i, What: what })
  const remove = (key: string): void => {
    if (kv.delete(key)) out.deleted.push(key)
  }
  ops.forEach((wrapped, i) => {
    const op = wrapped.KV
    if (op === undefined) return fail(i, 'stand-in: only KV operations are implemented')
    const key = op.Key ?? ''
    const cur = kv.get(key)
    const set = (): void => {
      const value = op.Value == null || op.Value === '' ? null : Buffer.from(op.Value, 'base64')
      const e: Entry = { key, value, flags: op.Flags ?? cur?.flags ?? 0, createIndex: cur?.createIndex ?? at, modifyIndex: at }
      kv.set(key, e)
      // Write verbs answer with the entry's metadata, not its value.
      out.results.push({ KV: { ...toJson(e), Value: null } })
    }
    switch (op.Verb) {
      case 'set':
        return set()
      case 'cas':
        if ((cur?.modifyIndex ?? 0) !== (op.Index ?? 0)) return fail(i, `failed to set key "${key}", index is stale`)
        return set()
      case 'get':
      case 'check-index':
        if (cur === undefined) return fail(i, `key "${key}" doesn't exist`)
        if (op.Verb === 'check-index' && cur.modifyIndex !== op.Index) return fail(i, `current modify index ${cur.modifyIndex} != ${op.Index ?? 0}`)
        return void out.results.push({ KV: toJson(cur) })
      case 'get-tree':
        for (const e of [...kv.values()].filter((x) => x.key.startsWith(key))) out.results.push({ KV: toJson(e) })
        return
      case 'check-not-exists':
        if (cur !== undefined) fail(i, `key "${key}" exists`)
        return
      case 'delete':
        return remove(key)
      case 'delete-tree':
        for (const k of [...kv.keys()].filter((x) => x.startsWith(key))) remove(k)
        return
      case 'delete-cas':
        if ((cur?.modifyIndex ?? 0) !== (op.Index ?? 0)) return fail(i, `failed to delete key "${key}", index is stale`)
        return remove(key)
      default:
        return fail(i, `stand-in: verb "${op.Verb ?? ''}" is not implemented`)
    }
  })
  return out
}
