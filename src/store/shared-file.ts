// The shared space of the file store: a directory beside the configuration
// file (`<config>.d/`, mode 0700), one file per key (mode 0600, written to a
// temporary file, fsynced and renamed, as the configuration is). A version
// is the file's inode, size and modification time. Leases are lock files
// created exclusively; their holder touches them every third of the lease
// time, and a lock file not touched for a whole lease time belongs to a
// holder that is gone (another process may remove it and take the lease).
// Instances sharing a file store share a host (or a network file system);
// the checks here are for processes, not for a cluster.

import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { watchFileChanges } from './file-watch.ts'
import { AsyncLock } from './lock.ts'
import type { Lease, SharedItem, SharedSpace } from './shared.ts'
import { ANY_VERSION } from './shared.ts'

const SAFE_PART = /^(?!\.{1,2}$)[^/\\\u0000]+$/

function checkKey(key: string): void {
  const parts = key.split('/')
  if (parts.length < 1 || !parts.every((p) => SAFE_PART.test(p))) throw new BalancerError(ErrorCode.Internal, `shared store: unusable key ${JSON.stringify(key)}`)
}

async function versionOf(path: string): Promise<string | null> {
  try {
    const s = await stat(path, { bigint: true })
    return `${s.ino}:${s.size}:${s.mtimeNs}`
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

export class FileShared implements SharedSpace {
  readonly kind = 'file'
  /** The directory: `<config file>.d`. */
  readonly root: string
  readonly #lock = new AsyncLock()
  readonly #pollMs: number
  /** Renewal timers of the leases held: stopped by close(), as when the process ends. */
  readonly #renewals = new Set<NodeJS.Timeout>()

  constructor(configPath: string, opts: { pollMs?: number } = {}) {
    this.root = `${configPath}.d`
    this.#pollMs = opts.pollMs ?? 500
  }

  #path(key: string): string {
    checkKey(key)
    return join(this.root, ...key.split('/'))
  }

  async #dir(path: string): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 })
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  }

  async list(dir: string): Promise<SharedItem[]> {
    const d = this.#path(dir.replace(/\/$/, ''))
    let names: string[]
    try {
      names = (await readdir(d)).filter((n) => !n.startsWith('.')).sort()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const out: SharedItem[] = []
    for (const n of names) {
      const item = await this.get(`${dir.replace(/\/$/, '')}/${n}`)
      if (item !== null) out.push(item)
    }
    return out
  }

  async get(key: string): Promise<SharedItem | null> {
    const path = this.#path(key)
    for (;;) {
      const before = await versionOf(path)
      if (before === null) return null
      let value: string
      try {
        value = await readFile(path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
        throw err
      }
      // Replaced while being read: read again, so value and version belong together.
      if ((await versionOf(path)) === before) return { key, value, version: before }
    }
  }

  put(key: string, value: string, expect: string | null): Promise<string | null> {
    return this.#lock.run(async () => {
      const path = this.#path(key)
      const current = await versionOf(path)
      if (expect !== ANY_VERSION && current !== expect) return null
      await this.#dir(path)
      const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(value)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
      const dh = await open(dirname(path), 'r')
      try {
        await dh.sync()
      } finally {
        await dh.close()
      }
      return versionOf(path)
    })
  }

  delete(key: string, expect?: string): Promise<boolean> {
    return this.#lock.run(async () => {
      const path = this.#path(key)
      const current = await versionOf(path)
      if (current === null || (expect !== undefined && current !== expect)) return false
      await unlink(path).catch(() => undefined)
      return true
    })
  }

  async watch(dir: string, signal: AbortSignal, onChange: () => void, onError: (err: Error) => void): Promise<void> {
    const d = this.#path(dir.replace(/\/$/, ''))
    let last: string | null = null
    let failing = false
    const signature = async (): Promise<string> => (await this.list(dir)).map((i) => `${i.key}=${i.version}`).join('\n')
    // The directory must exist for fs.watch; the stat poll covers what fs.watch misses.
    await mkdir(d, { recursive: true, mode: 0o700 }).catch(() => undefined)
    watchFileChanges({
      dir: d,
      base: '',
      anyName: true,
      path: d,
      pollMs: this.#pollMs,
      debounceMs: 50,
      signal,
      onTrigger: () => {
        void signature().then(
          (sig) => {
            const was = last
            failing = false
            if (was === null || sig === was) return
            last = sig
            onChange()
          },
          (err: unknown) => {
            if (!failing) onError(err instanceof Error ? err : new Error(String(err)))
            failing = true
          },
        )
      },
    })
    last = await signature().catch(() => '')
  }

  async lease(name: string, ttlMs: number): Promise<Lease | null> {
    const path = this.#path(`leases/${encodeURIComponent(name)}`)
    await this.#dir(path)
    const mine = JSON.stringify({ pid: process.pid, host: hostname(), id: randomBytes(8).toString('hex') })
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o600)
        try {
          await fh.writeFile(mine)
        } finally {
          await fh.close()
        }
        return this.#held(path, mine, ttlMs)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      // Held: by a live holder (touched within ttlMs), or left by a dead one.
      const s = await stat(path).catch(() => null)
      if (s !== null && Date.now() - s.mtimeMs < ttlMs) return null
      const seen = await readFile(path, 'utf8').catch(() => null)
      const again = await stat(path).catch(() => null)
      if (again !== null && Date.now() - again.mtimeMs < ttlMs) return null
      if (seen !== null && (await readFile(path, 'utf8').catch(() => null)) === seen) await unlink(path).catch(() => undefined)
    }
    return null
  }

  #held(path: string, mine: string, ttlMs: number): Lease {
    const ac = new AbortController()
    const touch = setInterval(
      () => {
        void (async () => {
          const now = await readFile(path, 'utf8').catch(() => null)
          if (now !== mine) {
            clearInterval(touch)
            ac.abort(new Error('lease lock file taken over or removed'))
            return
          }
          const t = new Date()
          await utimes(path, t, t).catch(() => undefined)
        })()
      },
      Math.max(50, Math.floor(ttlMs / 3)),
    )
    touch.unref()
    this.#renewals.add(touch)
    return {
      lost: ac.signal,
      release: async () => {
        clearInterval(touch)
        this.#renewals.delete(touch)
        if ((await readFile(path, 'utf8').catch(() => null)) === mine) await unlink(path).catch(() => undefined)
        if (!ac.signal.aborted) ac.abort(new Error('released'))
      },
    }
  }

  /** Stops renewing the leases held (they go stale after their time, as a dead holder's do). */
  async close(): Promise<void> {
    for (const t of this.#renewals) clearInterval(t)
    this.#renewals.clear()
    await this.#lock.run(() => undefined)
  }
}
