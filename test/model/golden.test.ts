// Golden files: test/golden/model/<name>.in.json(c) -> <name>.out.json.
// A valid input's .out is its canonical serialization; an invalid one's is
// the error (code and every problem). Refresh with UPDATE_GOLDEN=1.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BalancerError } from '../../src/model/errors.ts'
import { parseConfigText } from '../../src/model/parse.ts'
import { serializeConfig, serializeValidConfig } from '../../src/model/canonical.ts'

const DIR = resolve(import.meta.dirname, '../golden/model')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

function render(text: string): string {
  try {
    return serializeConfig(parseConfigText(text))
  } catch (err) {
    if (!(err instanceof BalancerError)) throw err
    return `${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`
  }
}

const inputs = readdirSync(DIR)
  .filter((n) => /\.in\.jsonc?$/.test(n))
  .sort()

describe('model golden files', () => {
  it('has the expected cases', () => {
    expect(inputs).toContain('seed-readme.in.jsonc')
    expect(inputs).toContain('quickstart.in.json')
    expect(inputs.length).toBeGreaterThanOrEqual(10)
  })

  for (const name of inputs) {
    const base = name.replace(/\.in\.jsonc?$/, '')
    const outPath = join(DIR, `${base}.out.json`)
    it(base, () => {
      const got = render(readFileSync(join(DIR, name), 'utf8'))
      if (UPDATE) writeFileSync(outPath, got)
      expect(existsSync(outPath), `${outPath} missing; run with UPDATE_GOLDEN=1`).toBe(true)
      const want = readFileSync(outPath, 'utf8')
      expect(got).toBe(want)
      // The canonical form is a fixed point: reading it back writes the same bytes.
      if (!want.startsWith('{\n  "error"')) {
        expect(render(want)).toBe(want)
        // The file store's and GET /'s serializer (each server's text remembered) writes the same bytes, twice.
        const cfg = parseConfigText(want)
        expect(serializeValidConfig(cfg)).toBe(want)
        expect(serializeValidConfig(cfg)).toBe(want)
      }
    })
  }
})
