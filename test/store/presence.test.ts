// Presence keys on the file store's shared space (the etcd case, with two
// real processes, is test/e2e/ratelimit-cluster.test.ts): instances count
// each other while their keys keep changing, by the reader's own clock.
// Rounds are driven by hand with the time given, so nothing waits.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FileStore } from '../../src/store/file.ts'
import { Presence } from '../../src/store/presence.ts'

const dir = mkdtempSync(join(tmpdir(), 'balancer-presence-'))
const store = new FileStore(join(dir, 'b.json'), { pollMs: 100 })
afterAll(async () => {
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('presence', () => {
  it('counts the instances writing their keys; one that stops writing drops out after the TTL; a stopped one deletes its key', async () => {
    const counts: Record<string, number[]> = { a: [], b: [] }
    const mk = (id: string): Presence =>
      new Presence(store.shared(), {
        id,
        ttlMs: 2000,
        onCount: (n) => counts[id]?.push(n),
        onError: (err) => {
          if (err !== null) throw err
        },
      })
    const a = mk('a')
    const b = mk('b')
    const t0 = 1_000_000
    expect(await a.once(t0)).toBe(1)
    expect(await b.once(t0)).toBe(2)
    expect(await a.once(t0 + 500)).toBe(2)
    // b stops writing (killed): a still counts it until its key has been still for the TTL.
    expect(await a.once(t0 + 1500)).toBe(2)
    expect(await a.once(t0 + 3000)).toBe(1)
    // b comes back: counted again at once.
    expect(await b.once(t0 + 3100)).toBe(2)
    expect(await a.once(t0 + 3200)).toBe(2)
    expect(counts.a).toEqual([1, 2, 1, 2])
    // A clean stop deletes the key: the others count one at their next round.
    const stop = new AbortController()
    stop.abort()
    await b.run(stop.signal)
    expect((await store.shared().list('presence')).map((i) => i.key)).toEqual(['presence/a'])
    expect(await a.once(t0 + 3300)).toBe(1)
  })
})
