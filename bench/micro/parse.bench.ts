// Micro benchmark of the request-head path: scan + parse of a typical
// browser-like request head, then the rewrite for the upstream.
// Run: node bench/micro/parse.bench.ts  (prints ns/op; no assertions)

import { forNode, requestHead } from '../../src/engine/http1/forward.ts'
import { HeadScan, RequestHead, parseRequestHead, scanHead } from '../../src/engine/http1/parse.ts'

const HEAD = Buffer.from(
  [
    'GET /api/v1/items?page=2&sort=name HTTP/1.1',
    'Host: shop.example.com',
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'Accept-Language: en-US,en;q=0.5',
    'Accept-Encoding: gzip, deflate, br',
    'Connection: keep-alive',
    'Cookie: session=0123456789abcdef0123456789abcdef; theme=dark',
    'Upgrade-Insecure-Requests: 1',
    '',
    '',
  ].join('\r\n'),
  'latin1',
)

const scan = new HeadScan()
const h = new RequestHead()
const XFP = 'x-forwarded-proto: http\r\n'

function parseOnce(): number {
  scan.reset()
  const end = scanHead(scan, HEAD, 0, 8192, 32768, h)
  if (end <= 0) throw new Error(`scan failed: ${end}`)
  const st = parseRequestHead(HEAD, 0, end, 8192, 32768, h)
  if (st !== 0) throw new Error(`parse failed: ${st}`)
  return end
}

function bench(name: string, fn: () => unknown, n: number): void {
  for (let i = 0; i < n / 10; i++) fn() // warm up
  const t0 = process.hrtime.bigint()
  let sink = 0
  for (let i = 0; i < n; i++) sink ^= (fn() as number | string).toString().length
  const ns = Number(process.hrtime.bigint() - t0) / n
  console.log(`${name.padEnd(28)} ${ns.toFixed(1).padStart(8)} ns/op  (${HEAD.length} byte head, sink ${sink & 1})`)
}

const N = 1_000_000
const PEER = { clientIp: '203.0.113.7', trusted: false, forNode: forNode('203.0.113.7') }
bench('scan + parse', parseOnce, N)
bench(
  'scan + parse + rewrite',
  () => {
    parseOnce()
    return requestHead(HEAD, h, PEER, XFP, false, false, 'b7f3a9c1d2e4-1')
  },
  N,
)
