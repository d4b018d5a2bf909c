// Config text (file or KV value) -> a valid Config. The loose JSON reader
// lives in jsonc.ts and the field-by-field normalizers in normalize.ts; this
// module is the one entry point for whole documents.

import type { Config } from './types.ts'
import { EMPTY, parseJsonLooseOrEmpty } from './jsonc.ts'
import { normalizeConfig } from './normalize.ts'
import { assertValidConfig } from './validate.ts'

export { parseJsonLoose } from './jsonc.ts'
export { normalizeConfig, normalizeFilter, normalizeGroup, normalizeRoute, normalizeServer, normalizeUpstream } from './normalize.ts'

/**
 * Parses and normalizes a whole configuration document, then runs the
 * whole-config checks (assertValidConfig), so the result is ready to compile.
 * A document with nothing but whitespace and comments is the empty config.
 * Throws E_BAD_JSON (syntax, with line:column), E_VALIDATION (every field
 * problem, or whole-config problems) or E_CONFLICT (listen addresses clash).
 */
export function parseConfigText(text: string): Config {
  const raw = parseJsonLooseOrEmpty(text)
  if (raw === EMPTY) return { servers: [] }
  const cfg = normalizeConfig(raw)
  assertValidConfig(cfg)
  return cfg
}
