import { describe, expect, it } from 'vitest'
import { JsonObjectSplitter } from '../../src/docker-api/json-stream.ts'

const events = [
  { Type: 'container', Action: 'start', Actor: { ID: 'a', Attributes: { name: 'wéb}{"', 'balancer.hosts': 'x\\"y' } } },
  { Type: 'container', Action: 'health_status: healthy', Actor: { ID: 'b', Attributes: {} } },
  { Type: 'service', Action: 'update', Actor: { ID: 'c', Attributes: { name: '日本' } } },
]

function feed(chunks: Buffer[]): unknown[] {
  const s = new JsonObjectSplitter()
  return chunks.flatMap((c) => s.push(c))
}

describe('JsonObjectSplitter (the /events decoder)', () => {
  const text = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''))

  it('decodes whole lines in one chunk', () => {
    expect(feed([text])).toEqual(events)
  })

  it('decodes every split of the byte stream, multi-byte characters and braces inside strings included', () => {
    for (let i = 1; i < text.length; i++) expect(feed([text.subarray(0, i), text.subarray(i)])).toEqual(events)
  })

  it('decodes one byte at a time', () => {
    expect(feed([...text].map((b) => Buffer.from([b])))).toEqual(events)
  })

  it('needs no newlines between objects', () => {
    expect(feed([Buffer.from(events.map((e) => JSON.stringify(e)).join(''))])).toEqual(events)
  })

  it('reports whether it holds a partial object', () => {
    const s = new JsonObjectSplitter()
    s.push(Buffer.from('{"a":'))
    expect(s.idle).toBe(false)
    expect(s.push(Buffer.from('1}\r\n'))).toEqual([{ a: 1 }])
    expect(s.idle).toBe(true)
  })

  it('refuses bytes that are not an object stream, and objects over the size limit', () => {
    expect(() => new JsonObjectSplitter().push(Buffer.from('[1]'))).toThrow(/expected "\{"/)
    const s = new JsonObjectSplitter(16)
    expect(() => s.push(Buffer.from(`{"a":"${'x'.repeat(32)}`))).toThrow(/larger than 16 bytes/)
  })
})
