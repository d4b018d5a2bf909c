import { describe, expect, it } from 'vitest'
import { upstreamKey } from '../../src/model/types.ts'

describe('upstreamKey', () => {
  it('joins target and port with a dash', () => {
    expect(upstreamKey({ Target: '127.0.0.1', Port: 80 })).toBe('127.0.0.1-80')
  })
})
