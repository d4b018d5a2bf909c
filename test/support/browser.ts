// Debian's Chromium driven by playwright-core, headless, for tests of the
// pages the balancer serves. Launched once per test file. The flags keep it
// from reaching for the network (this machine has none but loopback) and
// from sandboxing as root.
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}

/** Where tests keep screenshots and other artifacts (ignored by git). */
export const ARTIFACTS = new URL('../artifacts/', import.meta.url)
