// Store URL -> backend. `file://PATH` (also a bare path) is the embedded default.

import { fileURLToPath } from 'node:url'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { ConfigStore } from './store.ts'
import { FileStore } from './file.ts'

export function openStore(url: string): ConfigStore {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(url)
  if (m === null) return new FileStore(url)
  const scheme = m[1]
  const rest = m[2] ?? ''
  if (scheme === 'file') {
    // file:///abs/path and file://relative/path are both accepted.
    const path = rest.startsWith('/') ? fileURLToPath(`file://${rest}`) : rest
    return new FileStore(path)
  }
  throw new BalancerError(ErrorCode.Validation, `--store: unsupported store "${scheme}" (supported: file)`, [
    { path: '--store', message: `unsupported scheme "${scheme}"` },
  ])
}
