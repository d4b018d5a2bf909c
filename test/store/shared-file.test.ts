// The file store's shared space: a directory beside the configuration file,
// files mode 0600; the same suite as the KV stores.

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FileStore } from '../../src/store/file.ts'
import type { SharedSpace } from '../../src/store/shared.ts'
import { sharedKey } from '../../src/store/shared.ts'
import { sharedSuite } from './shared-suite.ts'

const dir = mkdtempSync(join(tmpdir(), 'balancer-shared-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const stores = new Map<SharedSpace, FileStore>()
const open = (prefix: string): FileStore => new FileStore(join(dir, `${prefix.replaceAll('/', '')}.json`), { pollMs: 100 })

sharedSuite({
  name: 'file',
  open(prefix) {
    const store = open(prefix)
    const space = store.shared()
    stores.set(space, store)
    return { space, close: () => store.close() }
  },
  leaseMs: 1000,
  // A dead process stops touching its lock file.
  kill: async (space) => stores.get(space)?.close(),
  expiryMs: 5000,
})

describe('file shared space on disk', () => {
  it('lives in <config>.d beside the configuration file, directories 0700, files 0600', async () => {
    const store = open('/mode')
    const space = store.shared()
    await space.put(sharedKey('certs', 'site'), 'secret', null)
    const root = join(dir, 'mode.json.d')
    expect(statSync(root).mode & 0o777).toBe(0o700)
    expect(statSync(join(root, 'certs')).mode & 0o777).toBe(0o700)
    expect(statSync(join(root, 'certs', 'site')).mode & 0o777).toBe(0o600)
    expect(readdirSync(join(root, 'certs'))).toEqual(['site'])
    await store.close()
  })

  it('refuses keys that would leave its directory', async () => {
    const space = open('/escape').shared()
    await expect(space.put('certs/..', 'x', null)).rejects.toThrow(/unusable key/)
    await expect(space.put('../x', 'x', null)).rejects.toThrow(/unusable key/)
  })
})
