// Debian's Chromium driven by playwright-core, headless, for tests of the
// pages the balancer serves. Launched once per test file. The flags keep it
// from reaching for the network (this machine has none but loopback) and
// from sandboxing as root; every launch gets a fresh temporary profile.
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

export interface LaunchOptions {
  /**
   * Names resolved to an address inside this browser only
   * (`--host-resolver-rules`), e.g. `{ 'evil.test': '127.0.0.1' }`, so a
   * test can serve a page "from" a domain without touching DNS.
   */
  hostMap?: Record<string, string>
}

export function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  const rules = Object.entries(opts.hostMap ?? {}).map(([name, ip]) => `MAP ${name} ${ip}`)
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(rules.length > 0 ? [`--host-resolver-rules=${rules.join(',')}`] : []),
    ],
  })
}

/** Where tests keep screenshots and other artifacts (ignored by git). */
export const ARTIFACTS = new URL('../artifacts/', import.meta.url)
