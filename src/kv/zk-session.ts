// One ZooKeeper session at a time (node-zookeeper-client), and promise forms
// of the few calls the store and the registry source make (shared by
// store/zookeeper.ts and sources/zookeeper/, which may not import each other).
//
// The client library reconnects a dropped connection by itself, within the
// same session. It does not notice a connection that goes silent (a frozen
// server, a black-holed network), and a session the server expired is dead
// for good. So: an expired session is replaced at once; a session whose calls
// time out while it claims to be connected is replaced by reset(); in both
// cases the watches of the old session are gone, and the store's watcher
// re-reads the tree (re-arming every watch) on the new one. Nor does the
// library bound the wait for the server's answer to its connect request once
// the TCP connection is up (seen after a server restart: a client that stays
// disconnected for good), so a client that has not had a session for a whole
// session timeout is replaced too: by then the server has expired its session
// anyway.

import { ACL, createClient, Exception, Id, Permission, State } from 'node-zookeeper-client'
import type { Client, Stat, Transaction } from 'node-zookeeper-client'

// node-zookeeper-client 1.1.3 knows ZooKeeper 3.4's error codes only. A newer
// server answers some requests with others (seen during a server restart),
// and the library's Exception.create then throws inside its socket's data
// handler: an uncaught exception that ends the process. Here an unknown code
// becomes a SYSTEM_ERROR exception naming the server's code, which the
// callers treat as any other failed call.
const Codes = Exception as unknown as { create(code: number, path?: string): Error; SYSTEM_ERROR: number }
const createException = Codes.create
Codes.create = (code: number, path?: string): Error => {
  try {
    return createException(code, path)
  } catch {
    const e = createException(Codes.SYSTEM_ERROR, path)
    e.message = `Exception: unknown ZooKeeper error code ${code}${path === undefined ? '' : `@${path}`}`
    return e
  }
}

export type ZkWatcher = () => void

export interface ZkSessionOptions {
  /** `host:port,host:port`. */
  connect: string
  /** Asked of the server, which clamps it to its own min/max. */
  sessionTimeoutMs: number
  /** `scheme`/`auth` pairs for addAuthInfo (digest: `user:password`). */
  auth: Array<{ scheme: string; auth: Buffer }>
}

export class ZkSession {
  readonly #o: ZkSessionOptions
  #client: Client | null = null
  /** When the current client last lost (or had not yet got) its session; null while connected. */
  #downSince: number | null = null
  readonly #listeners = new Set<(err: Error) => void>()

  constructor(o: ZkSessionOptions) {
    this.#o = o
  }

  /** Nodes this store creates: only this store's credentials may touch them when it has any. */
  get acls(): ACL[] {
    return this.#o.auth.length > 0 ? [new ACL(Permission.ALL, new Id('auth', ''))] : [new ACL(Permission.ALL, new Id('world', 'anyone'))]
  }

  /** A client with an established session; rejects when there is none within waitMs. */
  async client(waitMs: number): Promise<Client> {
    if (this.#client !== null && this.#downSince !== null && Date.now() - this.#downSince > this.#o.sessionTimeoutMs) this.reset()
    const c = this.#client ?? this.#create()
    if (c.getState() === State.SYNC_CONNECTED) return c
    await new Promise<void>((resolve, reject) => {
      const done = (err: Error | null): void => {
        clearTimeout(timer)
        c.removeListener('state', onState)
        if (err === null) resolve()
        else reject(err)
      }
      const onState = (s: State): void => {
        if (s === State.SYNC_CONNECTED) done(null)
        else if (s === State.EXPIRED || s === State.AUTH_FAILED) done(new Error(`session ${s.name.toLowerCase()}`))
      }
      c.on('state', onState)
      const timer = setTimeout(() => done(new Error(`no session within ${waitMs} ms`)), waitMs)
    })
    return c
  }

  /** Hears of every lost connection and dead session (watches may have been missed). */
  onTrouble(fn: (err: Error) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  /** True while the current client claims a live session. */
  connected(): boolean {
    return this.#client?.getState() === State.SYNC_CONNECTED
  }

  /** Abandons the current session (it went silent); the next client() starts a new one. */
  reset(): void {
    if (this.#client !== null) this.#drop(this.#client)
  }

  close(): void {
    this.reset()
    this.#listeners.clear()
  }

  #create(): Client {
    const c = createClient(this.#o.connect, { sessionTimeout: this.#o.sessionTimeoutMs, spinDelay: 200, retries: 0 })
    for (const a of this.#o.auth) c.addAuthInfo(a.scheme, a.auth)
    this.#downSince = Date.now()
    c.on('state', (s: State) => {
      if (s === State.SYNC_CONNECTED) this.#downSince = null
      else this.#downSince ??= Date.now()
      if (s === State.DISCONNECTED) this.#tell(new Error('connection lost'))
      else if (s === State.EXPIRED || s === State.AUTH_FAILED) {
        this.#drop(c)
        this.#tell(new Error(s === State.EXPIRED ? 'session expired' : 'authentication failed (check BALANCER_ZK_AUTH)'))
      }
    })
    c.connect()
    this.#client = c
    return c
  }

  #drop(c: Client): void {
    if (this.#client === c) {
      this.#client = null
      this.#downSince = null
    }
    c.removeAllListeners('state')
    c.close()
  }

  #tell(err: Error): void {
    for (const fn of [...this.#listeners]) fn(err)
  }
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof Exception && err.getCode() === code
}

/** True for the failures of a check-and-set transaction: someone else wrote first. */
export function isConflict(err: unknown): boolean {
  return isCode(err, Exception.BAD_VERSION) || isCode(err, Exception.NODE_EXISTS) || isCode(err, Exception.NO_NODE)
}

/** Children and the node's stat, or null when the node does not exist. */
export function getChildren(c: Client, path: string, watcher: ZkWatcher | null): Promise<{ children: string[]; stat: Stat } | null> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | Exception | null, children: string[], stat: Stat): void => {
      if (err === null) resolve({ children, stat })
      else if (isCode(err, Exception.NO_NODE)) resolve(null)
      else reject(err)
    }
    if (watcher === null) c.getChildren(path, cb)
    else c.getChildren(path, watcher, cb)
  })
}

export function getData(c: Client, path: string, watcher: ZkWatcher | null): Promise<{ data: Buffer; stat: Stat } | null> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | Exception | null, data: Buffer, stat: Stat): void => {
      if (err === null) resolve({ data: data ?? Buffer.alloc(0), stat })
      else if (isCode(err, Exception.NO_NODE)) resolve(null)
      else reject(err)
    }
    if (watcher === null) c.getData(path, cb)
    else c.getData(path, watcher, cb)
  })
}

/** The node's stat or null; with a watcher, also watches for the node's creation. */
export function exists(c: Client, path: string, watcher: ZkWatcher | null): Promise<Stat | null> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | Exception | null, stat: Stat): void => (err === null ? resolve(stat ?? null) : reject(err))
    if (watcher === null) c.exists(path, cb)
    else c.exists(path, watcher, cb)
  })
}

export function mkdirp(c: Client, path: string, acls: ACL[]): Promise<void> {
  return new Promise((resolve, reject) => c.mkdirp(path, acls, (err) => (err === null ? resolve() : reject(err))))
}

/**
 * Adds a version-checked setData or remove. The library's Transaction turns a
 * version of 0 into -1 ("any version": `version || -1`), which would silently
 * turn the check-and-set of every node written once into a blind write; the
 * version is put back on the op it just queued.
 */
export function checked(tx: Transaction, op: 'setData' | 'remove', path: string, version: number, data: Buffer | null = null): void {
  if (op === 'setData') tx.setData(path, data, version)
  else tx.remove(path, version)
  const ops = (tx as unknown as { ops: Array<{ path: string; version: number }> }).ops
  const last = ops[ops.length - 1]
  if (last === undefined || last.path !== path) throw new Error('node-zookeeper-client: unexpected Transaction internals')
  last.version = version
}

/** Commits; resolves with the per-op results, or null when a version check failed (nothing written). */
export function commit(tx: Transaction): Promise<Array<{ stat?: Stat }> | null> {
  return new Promise((resolve, reject) =>
    tx.commit((err, results: Array<{ stat?: Stat }>) => {
      if (err === null || err === undefined) resolve(results)
      else if (isConflict(err)) resolve(null)
      else reject(err)
    }),
  )
}

/** A zxid (8 bytes, big-endian) as a decimal string. */
export function zxid(b: Buffer | undefined): bigint {
  return b === undefined || b.length < 8 ? 0n : b.readBigInt64BE(0)
}
