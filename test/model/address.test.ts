import { describe, expect, it } from 'vitest'
import { listenConflict, parseListenAddress } from '../../src/model/address.ts'
import type { ParsedListenAddress } from '../../src/model/address.ts'

function ok(addr: string): ParsedListenAddress {
  const r = parseListenAddress(addr)
  if ('error' in r) throw new Error(r.error)
  return r
}

describe('parseListenAddress', () => {
  it.each([
    [':8080', '', 8080, '*:8080'],
    ['8080', '', 8080, '*:8080'],
    [' :80 ', '', 80, '*:80'],
    ['0.0.0.0:80', '0.0.0.0', 80, '0.0.0.0:80'],
    ['[::]:80', '::', 80, '[::]:80'],
    ['127.0.0.1:8080', '127.0.0.1', 8080, '127.0.0.1:8080'],
    ['localhost:8080', 'localhost', 8080, 'localhost:8080'],
    ['LocalHost:1', 'localhost', 1, 'localhost:1'],
    ['[::1]:8080', '::1', 8080, '[::1]:8080'],
    ['[0:0:0:0:0:0:0:1]:65535', '::1', 65535, '[::1]:65535'],
    ['[FE80::A]:80', 'fe80::a', 80, '[fe80::a]:80'],
  ])('%j -> host %j port %d key %j', (addr, host, port, key) => {
    expect(parseListenAddress(addr)).toEqual({ host, port, key })
  })

  it.each([
    ['', 'empty'],
    [':0', 'port must be an integer 1-65535, got "0"'],
    [':65536', 'port must be an integer 1-65535'],
    [':http', 'got "http"'],
    [':080', 'port must be'],
    ['127.0.0.1', 'has no port'],
    ['127.0.0.1:', 'got ""'],
    ['::1:80', 'put an IPv6 address in brackets'],
    ['[::1]', 'expected "[IPv6]:PORT"'],
    ['[::1]80', 'expected "[IPv6]:PORT"'],
    ['[nope]:80', 'is not an IPv6 address'],
    ['[fe80::1%eth0]:80', 'is not an IPv6 address'],
    ['example.com:80', 'host must be an IPv4 address, [IPv6], localhost'],
    ['256.1.1.1:80', 'host must be'],
    ['http://:80', 'must not include a scheme'],
    [': 80', 'whitespace'],
  ])('refuses %j', (addr, message) => {
    const r = parseListenAddress(addr)
    expect('error' in r && r.error).toContain(message)
  })
})

describe('listenConflict', () => {
  it.each([
    [':80', '127.0.0.1:80', true],
    [':80', '8080', false],
    ['0.0.0.0:80', '127.0.0.1:80', true],
    ['[::]:80', '[::1]:80', true],
    ['[::]:80', '0.0.0.0:80', true],
    ['127.0.0.1:80', '127.0.0.1:80', true],
    ['127.0.0.1:80', '127.0.0.2:80', false],
    ['127.0.0.1:80', '[::1]:80', false],
    ['localhost:80', '127.0.0.1:80', true],
    ['[::1]:80', 'localhost:80', true],
    ['localhost:80', 'localhost:81', false],
    [':80', ':80', true],
  ])('%j vs %j -> %s', (a, b, want) => {
    expect(listenConflict(ok(a), ok(b))).toBe(want)
    expect(listenConflict(ok(b), ok(a))).toBe(want)
  })
})
