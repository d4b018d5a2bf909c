// The ZooKeeper client library throws on an error code it does not know,
// inside its socket handler (an uncaught exception). Loading the session
// module makes such a code an ordinary failed call.

import { Exception } from 'node-zookeeper-client'
import { describe, expect, it } from 'vitest'
import '../../src/kv/zk-session.ts'

const Codes = Exception as unknown as { create(code: number, path?: string): Error & { getCode(): number }; SYSTEM_ERROR: number; NO_NODE: number }

describe('ZooKeeper error codes', () => {
  it('a code the library does not know (a newer server) becomes a SYSTEM_ERROR exception naming it, not a throw', () => {
    const e = Codes.create(-122, '/cluster/servers')
    expect(e).toBeInstanceOf(Exception)
    expect(e.getCode()).toBe(Codes.SYSTEM_ERROR)
    expect(e.message).toBe('Exception: unknown ZooKeeper error code -122@/cluster/servers')
  })

  it('known codes are unchanged', () => {
    const e = Codes.create(Codes.NO_NODE)
    expect(e.getCode()).toBe(Codes.NO_NODE)
    expect(e.message).toBe('Exception: NO_NODE[-101]')
  })
})
