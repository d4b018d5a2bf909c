// The live dashboard in a real browser (Debian's Chromium through
// playwright-core) against the real balancer process: the page asks for the
// token once, a server created through the API appears without a reload
// within a second, an upstream whose process is killed turns unhealthy
// within its check interval, and the Drain button stops traffic reaching an
// upstream (counted by the upstream itself). Screenshots are kept in
// test/artifacts/.
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChildUpstream } from '../support/child-upstream.ts'
import { ARTIFACTS, launchChromium } from '../support/browser.ts'
import { freePort, startBalancer, tempDir } from './harness.ts'
import type { Running } from './harness.ts'

const TOKEN = 'dashboard-test-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

interface Up {
  server: Server
  port: number
  hits: number
}

async function counting(): Promise<Up> {
  const up: Up = {
    server: createServer((_req, res) => {
      up.hits++
      res.end('ok')
    }),
    port: 0,
    hits: 0,
  }
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  const a = up.server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  return up
}

function get(port: number): Promise<number> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (r: IncomingMessage) => {
      r.resume()
      r.on('end', () => res(r.statusCode ?? 0))
      r.on('error', rej)
    })
    req.on('error', rej)
    req.end()
  })
}

async function call(bal: Running, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${bal.api}${path}`, { method, headers: { ...auth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  await res.arrayBuffer()
  return res.status
}

let browser: Browser
let bal: Running
let page: Page
const closers: Array<() => unknown> = []
const shots = fileURLToPath(ARTIFACTS)

beforeAll(async () => {
  mkdirSync(shots, { recursive: true })
  browser = await launchChromium()
  bal = await startBalancer(['--config', join(tempDir(), 'balancer.json'), '--token', TOKEN])
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
})

afterAll(async () => {
  for (const c of closers.reverse()) await c()
  await browser?.close()
  await bal?.stop('SIGKILL')
})

function row(address: string, key: string) {
  return page.locator(`section[data-server="${address}"] tr[data-key="${key}"]`)
}

describe('dashboard at /ui/', () => {
  it('asks for the token once, then shows a server created through the API within a second, without a reload', async () => {
    await page.goto(`${bal.api}/ui/`)
    const dialog = page.getByRole('dialog', { name: 'Admin token' })
    await dialog.waitFor({ state: 'visible', timeout: 5000 })
    await page.getByLabel('Token', { exact: true }).fill(TOKEN)
    await page.getByRole('button', { name: 'Connect' }).click()
    await page.getByText('Live', { exact: true }).waitFor({ timeout: 5000 })
    // The token stays in the tab, not in any URL.
    expect(page.url()).toBe(`${bal.api}/ui/`)
    expect(await page.evaluate("sessionStorage.getItem('balancer.token')")).toBe(TOKEN)

    const [b, c] = await Promise.all([counting(), counting()])
    closers.push(
      () => b.server.close(),
      () => c.server.close(),
    )
    const port = await freePort()
    const address = `127.0.0.1:${port}`
    const navigations: string[] = []
    page.on('framenavigated', (f) => navigations.push(f.url()))
    expect(
      await call(bal, 'POST', '/server', {
        address,
        upstreams: [
          { Target: '127.0.0.1', Port: b.port },
          { Target: '127.0.0.1', Port: c.port },
        ],
      }),
    ).toBe(201)
    const t0 = Date.now()
    await page
      .locator(`section[data-server="${address}"]`)
      .getByRole('heading', { name: `Server ${address}` })
      .waitFor({ timeout: 1000 })
    expect(Date.now() - t0).toBeLessThanOrEqual(1000)
    expect(navigations).toEqual([])
    await row(address, `127.0.0.1:${b.port}`).getByText('healthy').waitFor({ timeout: 2000 })
  })

  it('shows an upstream unhealthy after one failed check when its process is killed', async () => {
    const a = await ChildUpstream.start('a')
    closers.push(() => a.close())
    const port = await freePort()
    const address = `127.0.0.1:${port}`
    expect(await call(bal, 'POST', '/server', { address, upstreams: [{ Target: '127.0.0.1', Port: a.port }] })).toBe(201)
    expect(await call(bal, 'PUT', `/server/${address}/health`, { Path: '/healthz', Interval: '1s', Timeout: '500ms', Rise: 1, Fall: 1 })).toBe(200)
    await row(address, a.key).locator('.state-healthy').waitFor({ timeout: 5000 })
    await a.kill()
    // One failed check (Fall 1) within the 1 s interval, and the page's next update; the bound
    // leaves room for a loaded machine (the page polling or a check late by a few seconds), while
    // a page that does not follow health changes never shows it.
    await row(address, a.key).locator('.state-unhealthy').waitFor({ timeout: 8000 })
    await page
      .getByRole('listitem')
      .filter({ hasText: `${a.key}: healthy → unhealthy` })
      .waitFor({ timeout: 2000 })
  })

  it('Drain stops traffic reaching the upstream; Undrain brings it back', async () => {
    const [b, c] = await Promise.all([counting(), counting()])
    closers.push(
      () => b.server.close(),
      () => c.server.close(),
    )
    const port = await freePort()
    const address = `127.0.0.1:${port}`
    expect(
      await call(bal, 'POST', '/server', {
        address,
        upstreams: [
          { Target: '127.0.0.1', Port: b.port },
          { Target: '127.0.0.1', Port: c.port },
        ],
      }),
    ).toBe(201)
    for (let i = 0; i < 20; i++) expect(await get(port)).toBe(200)
    expect(b.hits).toBe(10)
    const kb = `127.0.0.1:${b.port}`
    await row(address, kb)
      .getByRole('button', { name: `Drain ${kb}` })
      .click()
    await row(address, kb).locator('.state-draining').waitFor({ timeout: 2000 })
    await row(address, kb)
      .getByRole('button', { name: `Undrain ${kb}` })
      .waitFor({ timeout: 2000 })
    const before = b.hits
    for (let i = 0; i < 30; i++) expect(await get(port)).toBe(200)
    expect(b.hits).toBe(before)
    expect(c.hits).toBe(10 + 30)
    // The page draws the traffic: let a plot point or two in, then keep a screenshot.
    await page.getByRole('img', { name: new RegExp(`Server ${address}, last 15 minutes: now`) }).waitFor({ timeout: 3000 })
    await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true })

    await row(address, kb)
      .getByRole('button', { name: `Undrain ${kb}` })
      .click()
    await row(address, kb).locator('.state-healthy').waitFor({ timeout: 2000 })
    for (let i = 0; i < 10; i++) expect(await get(port)).toBe(200)
    expect(b.hits).toBeGreaterThan(before)
    await page
      .getByRole('listitem')
      .filter({ hasText: `${kb} drained by an operator` })
      .waitFor({ timeout: 2000 })
  })

  it('reads on a phone and in dark mode', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' })
    closers.push(() => phone.close())
    await phone.goto(`${bal.api}/ui/`) // same tab storage is per page: it asks again
    await phone.getByLabel('Token', { exact: true }).fill(TOKEN)
    await phone.getByRole('button', { name: 'Connect' }).click()
    await phone.locator('section.server').first().waitFor({ timeout: 3000 })
    // No horizontal scrolling at phone width.
    expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390)
    const bg = await phone.evaluate('getComputedStyle(document.body).backgroundColor')
    expect(bg).toBe('rgb(20, 22, 26)')
    await phone.screenshot({ path: join(shots, 'dashboard-phone-dark.png'), fullPage: true })
  })

  it('the API documents the drain endpoints and refuses an unknown upstream', async () => {
    expect(await call(bal, 'PUT', '/upstream/127.0.0.1-1/drain')).toBe(404)
    expect(await call(bal, 'PUT', '/upstream/not-a-member/drain')).toBe(400)
    const events = await fetch(`${bal.api}/events`)
    expect(events.status).toBe(401)
    await events.arrayBuffer()
  })
})
