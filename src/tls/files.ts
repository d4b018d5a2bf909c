// Certificates from files (a server's `tls.Certificates`): read and checked
// when a configuration first names them, then watched. A renewed pair is
// checked again and handed on (onChange), so the next handshake serves it
// with no restart and no connection dropped; a broken one (unreadable,
// garbage, a key of another certificate, expired) is refused, logged and
// shown in status(), and the last good pair keeps serving.
//
// Watching is store/file-watch.ts's (a directory watch plus a stat poll,
// which also sees a symlink swapped under the path, as certificate tools
// and Kubernetes secrets do). A renewal writes two files; both are read
// again on any change, and a half-written pair (new certificate, old key)
// is refused until its second file lands.

import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import type { CertFileRef } from '../compiler/snapshot.ts'
import type { CertEntry } from '../engine/types.ts'
import type { Problem } from '../model/errors.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { watchFileChanges } from '../store/file-watch.ts'
import type { CertInfo } from './pem.ts'
import { inspectPair } from './pem.ts'

export interface CertFilesLog {
  info(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface CertFilesOptions {
  log: CertFilesLog
  /** A watched pair changed and passed its checks: the entries changed. */
  onChange: () => void
  /** Stat poll period; default 1000 ms. */
  pollMs?: number
}

/** What GET /cert and GET /status show of a file pair. */
export interface FileCertStatus {
  certFile: string
  keyFile: string
  info: CertInfo | null
  /** The last refused change (the pair before it keeps serving), or null. */
  error: { code: string; message: string; at: string } | null
}

interface Loaded {
  ref: CertFileRef
  cert: string
  key: string
  info: CertInfo
  entry: CertEntry
  error: FileCertStatus['error']
  stop: AbortController
}

/** Reads both files of a pair and checks them; throws E_TLS_CERT naming the file and the problem. */
export async function readPair(certFile: string, keyFile: string, paths?: { cert: string; key: string }): Promise<{ cert: string; key: string; info: CertInfo }> {
  const certPath = paths?.cert ?? certFile
  const keyPath = paths?.key ?? keyFile
  const cert = await readText(certFile, certPath)
  const key = await readText(keyFile, keyPath)
  const info = inspectPair(cert, key, { certPath, keyPath, certName: certFile, keyName: keyFile })
  return { cert, key, info }
}

async function readText(file: string, path: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : (err as Error).message
    throw new BalancerError(ErrorCode.TlsCert, `${path}: cannot read ${file}: ${why} (${code})`, [{ path, message: `cannot read ${file}: ${why} (${code})` }])
  }
}

export class CertFiles {
  readonly #o: CertFilesOptions
  readonly #loaded = new Map<string, Loaded>()

  constructor(o: CertFilesOptions) {
    this.#o = o
  }

  /**
   * Loads and starts watching every pair of `refs` not loaded yet. All or
   * nothing: one bad pair throws E_TLS_CERT listing every bad file, and none
   * of the new pairs is kept.
   */
  async ensure(refs: readonly CertFileRef[]): Promise<void> {
    const fresh = refs.filter((r, i) => !this.#loaded.has(r.id) && refs.findIndex((x) => x.id === r.id) === i)
    const results = await Promise.allSettled(fresh.map((r) => readPair(r.certFile, r.keyFile)))
    const problems: Problem[] = []
    for (const r of results) {
      if (r.status === 'rejected') {
        const err = r.reason
        if (err instanceof BalancerError) problems.push(...err.problems)
        else problems.push({ path: 'tls', message: String(err) })
      }
    }
    if (problems.length > 0) throw new BalancerError(ErrorCode.TlsCert, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
    results.forEach((r, i) => {
      if (r.status !== 'fulfilled') return
      const ref = fresh[i] as CertFileRef
      this.#add(ref, r.value.cert, r.value.key, r.value.info)
    })
  }

  /** Forgets (and stops watching) every pair not in `refs`. */
  retain(refs: readonly CertFileRef[]): void {
    const keep = new Set(refs.map((r) => r.id))
    for (const [id, l] of this.#loaded) {
      if (keep.has(id)) continue
      l.stop.abort()
      this.#loaded.delete(id)
    }
  }

  /** The entries of every loaded pair (its last good content). */
  entries(): CertEntry[] {
    return [...this.#loaded.values()].map((l) => l.entry)
  }

  status(): FileCertStatus[] {
    return [...this.#loaded.values()].map((l) => ({ certFile: l.ref.certFile, keyFile: l.ref.keyFile, info: l.info, error: l.error }))
  }

  /** Stops every watch. */
  close(): void {
    for (const l of this.#loaded.values()) l.stop.abort()
    this.#loaded.clear()
  }

  #add(ref: CertFileRef, cert: string, key: string, info: CertInfo): void {
    const l: Loaded = { ref, cert, key, info, entry: { id: ref.id, cert, key, names: info.names, notAfter: info.notAfter }, error: null, stop: new AbortController() }
    this.#loaded.set(ref.id, l)
    const onTrigger = (): void => void this.#reload(l)
    for (const file of new Set([ref.certFile, ref.keyFile])) {
      const path = resolve(file)
      watchFileChanges({ dir: dirname(path), base: basename(path), path, pollMs: this.#o.pollMs ?? 1000, debounceMs: 100, signal: l.stop.signal, onTrigger })
    }
  }

  async #reload(l: Loaded): Promise<void> {
    if (l.stop.signal.aborted) return
    let next: { cert: string; key: string; info: CertInfo }
    try {
      next = await readPair(l.ref.certFile, l.ref.keyFile)
    } catch (err) {
      if (l.stop.signal.aborted) return
      const be = err instanceof BalancerError ? err : new BalancerError(ErrorCode.TlsCert, String(err))
      if (l.error?.message !== be.message)
        this.#o.log.error({ certFile: l.ref.certFile, keyFile: l.ref.keyFile, err: be.message }, 'certificate files changed but cannot be used; the last good certificate keeps serving')
      l.error = { code: be.code, message: be.message, at: new Date().toISOString() }
      return
    }
    if (l.stop.signal.aborted) return
    l.error = null
    if (next.cert === l.cert && next.key === l.key) return
    l.cert = next.cert
    l.key = next.key
    l.info = next.info
    l.entry = { id: l.ref.id, cert: next.cert, key: next.key, names: next.info.names, notAfter: next.info.notAfter }
    this.#o.log.info({ certFile: l.ref.certFile, names: next.info.names, notAfter: new Date(next.info.notAfter).toISOString() }, 'certificate files reloaded')
    this.#o.onChange()
  }
}

/**
 * The certificate files a server names, read and checked on this host (the
 * API refuses a server whose files it cannot serve, before storing it).
 * `path`: where the server is in the request (`body`). Throws one
 * E_TLS_CERT listing every bad file at its field's path.
 */
export async function checkServerFiles(tls: { Certificates: ReadonlyArray<{ CertFile: string; KeyFile: string }> } | undefined, path: string): Promise<void> {
  if (tls === undefined) return
  const problems: Problem[] = []
  await Promise.all(
    tls.Certificates.map(async (c, i) => {
      const at = `${path}.tls.Certificates[${i}]`
      try {
        await readPair(c.CertFile, c.KeyFile, { cert: `${at}.CertFile`, key: `${at}.KeyFile` })
      } catch (err) {
        if (err instanceof BalancerError) problems.push(...err.problems)
        else throw err
      }
    }),
  )
  if (problems.length > 0) throw new BalancerError(ErrorCode.TlsCert, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
}
