// Every accepted API write is logged once with who, what and the resulting
// revision; the token never appears in the log or in an error.

import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { summarizeChange } from '../../src/admin/change-summary.ts'
import { parseConfigText as parseConfig } from '../../src/model/parse.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

let api: Api
afterEach(async () => {
  await api.close()
})

const TOKEN = 'audit-token-that-must-never-be-logged-42'

function capture(): { lines: () => Array<Record<string, any>>; text: () => string; log: pino.Logger } {
  let text = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8')
      cb()
    },
  })
  const log = pino({ level: 'info' }, sink)
  return {
    log,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, any>),
  }
}

describe('write log', () => {
  it('logs each accepted write once with client, method, path, revision and changes; never the token', async () => {
    const cap = capture()
    api = await startApi({ token: TOKEN, writeLog: cap.log })
    const auth = { authorization: `Bearer ${TOKEN}` }
    expect((await api.send('POST', '/server', { body: { address: ':8080', upstreams: [{ Target: '10.0.0.5', Port: 80 }] }, headers: auth })).status).toBe(201)
    expect((await api.send('PUT', '/server/:8080/upstream/10.0.0.5-80', { body: { Weight: 3 }, headers: auth })).status).toBe(200)
    expect((await api.send('PUT', '/server/:8080/route/shop?x=1', { body: { filter: { Hosts: ['shop.example.com'] } }, headers: auth })).status).toBe(201)
    expect((await api.send('GET', '/server/:8080', { headers: auth })).status).toBe(200)
    // Refused: bad token, token in odd places, a failing write with the token.
    for (const authorization of [`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN]) {
      const r = await api.send('DELETE', '/server/:8080', { headers: { authorization } })
      expect(r.status).toBe(401)
      expect(r.text).not.toContain(TOKEN)
    }
    const bad = await api.send('POST', '/server', { body: { address: ':8080', upstreams: [{ Target: '10.0.0.6', Port: 80 }] }, headers: { ...auth, 'x-note': TOKEN } })
    expect(bad.status).toBe(409)
    expect((await api.send('DELETE', '/server/:8080', { headers: auth })).status).toBe(204)

    const lines = cap.lines()
    expect(lines.map((l) => [l.method, l.path, l.status, l.changes])).toEqual([
      ['POST', '/server', 201, ['server :8080 created']],
      ['PUT', '/server/:8080/upstream/10.0.0.5-80', 200, ['upstream 10.0.0.5-80 of :8080/default updated']],
      ['PUT', '/server/:8080/route/shop', 201, ['route :8080/shop created']],
      ['DELETE', '/server/:8080', 204, ['server :8080 deleted']],
    ])
    for (const l of lines) {
      expect(l.level).toBe(30)
      expect(l.client).toBe('127.0.0.1')
      expect(typeof l.revision).toBe('string')
    }
    expect(lines[3]?.revision).toBe(api.control.stored().revision)
    expect(cap.text()).not.toContain(TOKEN)
  })
})

describe('live-state writes', () => {
  it('draining an upstream by hand is logged once with what it did', async () => {
    const cap = capture()
    const drained = new Map<string, boolean>()
    api = await startApi({ writeLog: cap.log, drain: (key, on) => (drained.set(key, on), true) })
    expect((await api.send('PUT', '/upstream/10.0.0.5-80/drain')).status).toBe(200)
    expect((await api.send('DELETE', '/upstream/10.0.0.5-80/drain')).status).toBe(200)
    expect(cap.lines().map((l) => [l.method, l.path, l.changes, l.msg])).toEqual([
      ['PUT', '/upstream/10.0.0.5-80/drain', ['upstream 10.0.0.5:80 drained'], 'live state changed through the API'],
      ['DELETE', '/upstream/10.0.0.5-80/drain', ['upstream 10.0.0.5:80 back in service'], 'live state changed through the API'],
    ])
  })
})

describe('summarizeChange', () => {
  const cfg = (text: string) => parseConfig(text)
  it('names servers, routes, members, filters and policy groups', () => {
    const a = cfg('{"servers":[{"address":":8080","upstreams":[{"Target":"a","Port":1}],"routes":[{"name":"r","filter":{"Hosts":["x.example"]}}]},{"address":":9000"}]}')
    const b = cfg('{"servers":[{"address":":8080","filter":{"PathPrefix":"/p"},"upstreams":[{"Target":"b","Port":1}],"retry":{"Attempts":1},"routes":[]},{"address":":9001"}]}')
    expect(summarizeChange(a, b)).toEqual([
      'server :9000 deleted',
      'route :8080/r deleted',
      'filter of :8080/default updated',
      'upstream a-1 of :8080/default deleted',
      'upstream b-1 of :8080/default created',
      'retry of :8080/default set',
      'server :9001 created',
    ])
    expect(summarizeChange(a, a)).toEqual(['no change'])
  })
})
