// The behaviour every store's shared space (store/shared.ts) must show: the
// space certificates, ACME state and leases live in. Run by each backend's
// test file against the real server it started (etcd, ZooKeeper), the
// Consul stand-in, or a temporary directory (file). Every test works under
// a prefix of its own.

import { describe, expect, it } from 'vitest'
import type { SharedSpace } from '../../src/store/shared.ts'
import { ANY_VERSION, sharedKey, sharedName } from '../../src/store/shared.ts'
import { until } from '../support/poll.ts'

export interface SharedHarness {
  name: string
  /** A space under its own prefix; a second call with the same prefix is another instance sharing it. */
  open(prefix: string): { space: SharedSpace; close(): Promise<void> }
  /** Lease time for the takeover test (the smallest the backend honours). */
  leaseMs: number
  /** Makes the holder of every lease opened on `space` vanish as a dead process would (stops renewals, drops the session). */
  kill(space: SharedSpace): Promise<void>
  /** How long, at most, a dead holder's lease takes to go. */
  expiryMs: number
}

export function sharedSuite(h: SharedHarness): void {
  describe(`${h.name} shared space`, () => {
    it('writes with check-and-set: create only if absent, replace only at the version read', async () => {
      const a = h.open('/shared-cas')
      try {
        const k = sharedKey('certs', '*.example.com')
        expect(sharedName(k)).toBe('*.example.com')
        expect(await a.space.get(k)).toBeNull()
        const v1 = await a.space.put(k, '{"n":1}', null)
        expect(v1).not.toBeNull()
        expect(await a.space.put(k, '{"n":2}', null)).toBeNull()
        const read = await a.space.get(k)
        expect(read).toEqual({ key: k, value: '{"n":1}', version: v1 })
        const v2 = await a.space.put(k, '{"n":2}', v1)
        expect(v2).not.toBeNull()
        expect(v2).not.toBe(v1)
        expect(await a.space.put(k, '{"n":3}', v1)).toBeNull()
        expect((await a.space.get(k))?.value).toBe('{"n":2}')
        expect(await a.space.put(k, '{"n":4}', ANY_VERSION)).not.toBeNull()
        await a.space.put(sharedKey('certs', 'b.example.com'), 'b', null)
        await a.space.put(sharedKey('acme', 'other'), 'x', null)
        expect((await a.space.list('certs')).map((i) => [sharedName(i.key), i.value])).toEqual([
          ['*.example.com', '{"n":4}'],
          ['b.example.com', 'b'],
        ])
        expect(await a.space.delete(k, 'not-the-version')).toBe(false)
        expect(await a.space.delete(k)).toBe(true)
        expect(await a.space.delete(k)).toBe(false)
        expect((await a.space.list('certs')).map((i) => sharedName(i.key))).toEqual(['b.example.com'])
      } finally {
        await a.close()
      }
    })

    it("a watch on a directory hears another instance's writes and deletes", async () => {
      const a = h.open('/shared-watch')
      const b = h.open('/shared-watch')
      const ac = new AbortController()
      try {
        let changes = 0
        await a.space.watch(
          'certs',
          ac.signal,
          () => changes++,
          () => undefined,
        )
        expect(changes).toBe(0)
        const base = changes
        const k = sharedKey('certs', 'w.example.com')
        await b.space.put(k, 'one', null)
        await until(() => changes > base, 5000, 'the write to be heard')
        const afterPut = changes
        await b.space.delete(k)
        await until(() => changes > afterPut, 5000, 'the delete to be heard')
        const afterDelete = changes
        await b.space.put(sharedKey('acme', 'elsewhere'), 'x', null)
        await b.space.put(k, 'two', null)
        await until(() => changes > afterDelete, 5000, 'the second write to be heard')
      } finally {
        ac.abort()
        await a.close()
        await b.close()
      }
    })

    it('a lease has one holder at a time; release lets another take it', async () => {
      const a = h.open('/shared-lease')
      const b = h.open('/shared-lease')
      try {
        const la = await a.space.lease('www.example.com', h.leaseMs)
        expect(la).not.toBeNull()
        expect(await b.space.lease('www.example.com', h.leaseMs)).toBeNull()
        const other = await b.space.lease('api.example.com', h.leaseMs)
        expect(other).not.toBeNull()
        await la?.release()
        expect(la?.lost.aborted).toBe(true)
        const lb = await b.space.lease('www.example.com', h.leaseMs)
        expect(lb).not.toBeNull()
        expect(lb?.lost.aborted).toBe(false)
        await lb?.release()
        await other?.release()
      } finally {
        await a.close()
        await b.close()
      }
    })

    it("a dead holder's lease goes, and another instance takes it", async () => {
      const a = h.open('/shared-dead')
      const b = h.open('/shared-dead')
      try {
        expect(await a.space.lease('dead.example.com', h.leaseMs)).not.toBeNull()
        await h.kill(a.space)
        const t0 = Date.now()
        let taken = null
        await until(async () => (taken = await b.space.lease('dead.example.com', h.leaseMs)) !== null, h.expiryMs, 'the lease to be free again')
        console.log(`[${h.name}] dead holder's lease taken over after ${Date.now() - t0} ms`)
        await (taken as unknown as { release(): Promise<void> } | null)?.release()
      } finally {
        await a.close().catch(() => undefined)
        await b.close()
      }
    }, 60_000)
  })
}
