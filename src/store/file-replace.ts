// Replacing the configuration file whole, durably: the parts go to a
// temporary file in the target's directory, which is fsynced, renamed over
// the target, and the directory fsynced. Split in two so the file store can
// write and sync a 10 MiB file without holding its lock (prepareFile) and
// rename it under the lock (commitFile).

import { randomBytes } from 'node:crypto'
import { open, realpath, rename, stat, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { statSignature } from './file-watch.ts'

/** A whole file written to a temporary file and synced, not yet renamed over the target. */
export interface Prepared {
  tmp: string
  target: string
  dir: string
  parts: readonly Buffer[]
  /** Bytes of the file. */
  size: number
}

/** The parts in a temporary file beside the file `location` names (through a symlink), synced, with the target's permission bits. */
export async function prepareFile(location: string, parts: readonly Buffer[]): Promise<Prepared> {
  // A symlinked config file (dotfiles, mounted secrets) stays a symlink: the
  // file it points to is the one replaced.
  const target = await realpath(location).catch(() => location)
  const dir = dirname(target)
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const mode = await stat(target).then(
      (s) => s.mode & 0o777,
      () => 0o644,
    )
    const fh = await open(tmp, 'wx', mode)
    try {
      await writeAll(fh, parts)
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw storeError(`cannot write ${location}`, err)
  }
  let size = 0
  for (const part of parts) size += part.length
  return { tmp, target, dir, parts, size }
}

/** Renames a prepared file over its target and syncs the directory; resolves with the file's signature (file-watch.ts). */
export async function commitFile(location: string, p: Prepared): Promise<string> {
  try {
    let sig: string
    try {
      await rename(p.tmp, p.target)
      sig = statSignature(await stat(p.target, { bigint: true }))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // A bind-mounted single file (docker -v cfg.json:/etc/...) cannot be
      // renamed over; writing it in place is the only option there.
      if (code !== 'EBUSY' && code !== 'EXDEV') throw err
      await unlink(p.tmp).catch(() => undefined)
      sig = await writeInPlace(p.target, p.parts)
    }
    await syncDir(p.dir)
    return sig
  } catch (err) {
    await unlink(p.tmp).catch(() => undefined)
    throw storeError(`cannot write ${location}`, err)
  }
}

async function writeInPlace(path: string, parts: readonly Buffer[]): Promise<string> {
  const fh = await open(path, 'r+')
  try {
    await fh.truncate(0)
    await writeAll(fh, parts)
    await fh.sync()
    return statSignature(await fh.stat({ bigint: true }))
  } finally {
    await fh.close()
  }
}

/** Writes every part from offset 0 (writev, again for what a short write left). */
async function writeAll(fh: FileHandle, parts: readonly Buffer[]): Promise<void> {
  let pos = 0
  let rest = [...parts]
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos)
    pos += bytesWritten
    let n = bytesWritten
    while (rest.length > 0 && n >= (rest[0] as Buffer).length) n -= (rest.shift() as Buffer).length
    if (n > 0) rest[0] = (rest[0] as Buffer).subarray(n)
    rest = rest.filter((b) => b.length > 0)
  }
}

export async function syncDir(dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch (err) {
    // Some platforms and file systems cannot open or fsync a directory.
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES') throw err
  } finally {
    await fh?.close()
  }
}

/** E_STORE_UNAVAILABLE saying what failed (a BalancerError passes through). */
export function storeError(what: string, err: unknown): BalancerError {
  if (err instanceof BalancerError) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new BalancerError(ErrorCode.StoreUnavailable, `${what}: ${detail}`)
}
