// A real Chromium page on another origin can neither read nor write the
// admin API: not as a plain cross-origin page, and not after DNS rebinding,
// where the page's own name points at 127.0.0.1 and its requests to the API
// are same-origin in the browser's eyes.

import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext } from 'playwright-core'
import { launchChromium } from '../support/browser.ts'
import { startApi } from './harness.ts'
import type { Api } from './harness.ts'

const STORED = '{"servers":[{"address":":8080","upstreams":[{"Target":"127.0.0.1","Port":8081}]}]}\n'

const PAGE = '<!doctype html><title>a page on another site</title><p>nothing to see</p>'

let api: Api
let browser: Browser
let context: BrowserContext
let pages: Server
let pagePort: number

beforeAll(async () => {
  api = await startApi({ fileText: STORED })
  // The attacker's web server: any path answers the page.
  pages = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE))
  await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r))
  const a = pages.address()
  pagePort = typeof a === 'object' && a !== null ? a.port : 0
  browser = await launchChromium({ hostMap: { 'evil.test': '127.0.0.1' } })
  context = await browser.newContext()
})

afterAll(async () => {
  await browser?.close()
  await new Promise((r) => pages?.close(r))
  await api?.close()
})

interface Attempt {
  status: number | null
  body: string | null
  error: string | null
}

/** Runs fetch(url, init) inside the page; a network/CORS failure comes back as `error`. */
async function attempt(origin: string, url: string, init: Record<string, unknown>): Promise<Attempt> {
  const page = await context.newPage()
  try {
    await page.goto(origin)
    return await page.evaluate(
      async ([u, i]) => {
        try {
          const r = await fetch(u as string, i as RequestInit)
          return { status: r.type === 'opaque' ? null : r.status, body: r.type === 'opaque' ? null : await r.text(), error: null }
        } catch (e) {
          return { status: null, body: null, error: String(e) }
        }
      },
      [url, init] as const,
    )
  } finally {
    await page.close()
  }
}

/**
 * Bound on loading Swagger UI's page (1.4 MB of script) in the browser: about
 * a second on an idle machine, but Chromium shares two cores with the rest of
 * the suite, and once the test ran past 30 s (Playwright's default for a
 * navigation). Kept under the test's own limit.
 */
const SWAGGER_MS = 50_000

const WRITE = { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"address":":9000","upstreams":[{"Target":"10.1.2.3","Port":80}]}' }

describe('a real browser', () => {
  it("the API's own pages work in it (Swagger UI, and same-origin calls from it)", async () => {
    const page = await context.newPage()
    try {
      // Swagger UI's own request for the document is what a Host or Origin
      // check that refused the API's pages would break; waited for as it
      // happens, not the page's whole load event (images and fonts too).
      const [nav, spec] = await Promise.all([
        page.goto(`http://localhost:${api.port}/docs/static/index.html`, { waitUntil: 'commit', timeout: SWAGGER_MS }),
        page.waitForResponse((r) => new URL(r.url()).pathname === '/docs/json', { timeout: SWAGGER_MS }),
      ])
      expect(nav?.status()).toBe(200)
      expect(spec.status()).toBe(200)
      const got = await page.evaluate(async () => {
        const r = await fetch('/')
        return { status: r.status, body: await r.text() }
      })
      expect(got.status).toBe(200)
      expect(got.body).toContain('8081')
    } finally {
      await page.close()
    }
  })

  it("after DNS rebinding (evil.test:P served the page, then evil.test:P is the API) the page's reads and writes get 421 and change nothing", async () => {
    // Rebinding in time, as it happens: the attacker's server answers at
    // evil.test:P for the page load; then what answers there is the API
    // (here: the same loopback address and port, handed over), so the page's
    // fetches are same-origin to the browser and carry Host and Origin
    // evil.test:P.
    const attacker = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html', connection: 'close' }).end(PAGE))
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r))
    const a = attacker.address()
    const port = typeof a === 'object' && a !== null ? a.port : 0
    const page = await context.newPage()
    let rebound: Api | undefined
    try {
      await page.goto(`http://evil.test:${port}/`)
      attacker.closeAllConnections()
      await new Promise((r) => attacker.close(r))
      rebound = await startApi({ fileText: STORED, port })
      const results = await page.evaluate(
        async ([write]) => {
          const out: Array<{ status: number; body: string }> = []
          for (const [url, init] of [
            ['/', {}],
            ['/status', {}],
            ['/docs/json', {}],
            ['/server', write],
            ['/server/:8080', { method: 'DELETE' }],
          ] as const) {
            const r = await fetch(url, init as RequestInit)
            out.push({ status: r.status, body: await r.text() })
          }
          return out
        },
        [WRITE] as const,
      )
      expect(results).toHaveLength(5)
      for (const r of results) {
        expect(r.status).toBe(421)
        expect(JSON.parse(r.body).code).toBe('E_MISDIRECTED')
        expect(r.body).not.toContain('8081')
      }
      expect(rebound.fileText()).toBe(STORED)
    } finally {
      await page.close()
      await rebound?.close()
    }
  })

  it('a page on another port of evil.test fetching evil.test:<api port> fails to read and write', async () => {
    const from = `http://evil.test:${pagePort}/`
    const read = await attempt(from, `http://evil.test:${api.port}/`, {})
    expect(read.error).toMatch(/TypeError/)
    const write = await attempt(from, `http://evil.test:${api.port}/server`, { ...WRITE, mode: 'no-cors' })
    expect(write.status).toBeNull()
    expect(api.fileText()).toBe(STORED)
  })

  it('a cross-origin page fetching http://127.0.0.1:<api port>/ fails to read and write', async () => {
    for (const from of [`http://evil.test:${pagePort}/`, `http://127.0.0.1:${pagePort}/`]) {
      const read = await attempt(from, `http://127.0.0.1:${api.port}/`, {})
      expect(read.error).toMatch(/TypeError/)
      const write = await attempt(from, `http://127.0.0.1:${api.port}/server`, { ...WRITE, mode: 'no-cors' })
      expect(write.status).toBeNull()
      const json = await attempt(from, `http://127.0.0.1:${api.port}/server`, { ...WRITE, headers: { 'content-type': 'application/json' } })
      expect(json.error).toMatch(/TypeError/)
    }
    expect(api.fileText()).toBe(STORED)
  })
})
