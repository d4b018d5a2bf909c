// Change detection for one file, independent of what the file holds. Two
// signals feed one debounced trigger:
// - fs.watch on the DIRECTORY, filtered to the file's name, because editors
//   that save by writing a temporary file and renaming it over the target
//   replace the inode a file watch would be attached to;
// - a stat poll (inode, size, mtime, ctime), because inotify misses changes to
//   bind-mounted files, network file systems and some editors.
// A trigger only means "the file may have changed": the caller re-reads and
// compares, so a spurious trigger costs one read.

import { watch } from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { stat } from 'node:fs/promises'

export interface FileChangeOptions {
  dir: string
  /** The file's name inside dir; directory events for other names are ignored. */
  base: string
  /** Every event in dir counts, whatever the name (watching a directory's content). */
  anyName?: boolean
  path: string
  pollMs: number
  /** A burst of events closer together than this is one trigger. */
  debounceMs: number
  signal: AbortSignal
  onTrigger: () => void
}

export function watchFileChanges(o: FileChangeOptions): void {
  if (o.signal.aborted) return
  let timer: ReturnType<typeof setTimeout> | null = null
  const fire = (): void => {
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      if (!o.signal.aborted) o.onTrigger()
    }, o.debounceMs)
  }

  try {
    const w = watch(o.dir, { persistent: false, signal: o.signal }, (_event, name) => {
      // Some platforms report no file name; then any event in the directory counts.
      if (name === null || o.anyName === true || name === o.base) fire()
    })
    // The directory vanished or inotify ran out of watches: the poll still covers it.
    w.on('error', () => undefined)
  } catch {
    // fs.watch is unavailable here (missing directory, unsupported FS): poll only.
  }

  let last: string | null = null
  let busy = false
  const poll = async (): Promise<void> => {
    if (busy) return
    busy = true
    const sig = await fileSignature(o.path)
    busy = false
    if (last !== null && sig !== last) fire()
    last = sig
  }
  const interval = setInterval(() => void poll(), o.pollMs)
  // The watcher must not keep a process alive on its own; its owner's servers do.
  interval.unref()
  void poll()

  o.signal.addEventListener(
    'abort',
    () => {
      clearInterval(interval)
      if (timer !== null) clearTimeout(timer)
    },
    { once: true },
  )
}

/**
 * Inode, size, mtime and ctime: any write, rename over or truncate changes
 * it (ctime cannot be set back by hand). Never rejects: an unreadable or
 * missing file is a signature of its own.
 */
export async function fileSignature(path: string): Promise<string> {
  try {
    return statSignature(await stat(path, { bigint: true }))
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`
  }
}

/** fileSignature of a stat already taken (an open file's, after it was renamed into place). */
export function statSignature(s: BigIntStats): string {
  return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
}
