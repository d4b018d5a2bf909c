// The one parser: loose input -> ValidConfig. The loose JSON reader lives in
// jsonc.ts, the field-by-field normalizers in normalize.ts and the
// whole-config checks in validate.ts; this module runs them once and brands
// the result, so no later layer (store, merge, compiler, workers) checks again.

import type { Config, Server, ValidConfig } from './types.ts'
import { EMPTY, parseJsonLooseOrEmpty } from './jsonc.ts'
import { BalancerError } from './errors.ts'
import type { Problem } from './errors.ts'
import { normalizeConfig, normalizeServer } from './normalize.ts'
import { filterProblems, found, listenProblems, throwProblems } from './validate.ts'

export { parseJsonLoose } from './jsonc.ts'
export { normalizeConfig, normalizeFilter, normalizeGroup, normalizeRoute, normalizeServer, normalizeUpstream } from './normalize.ts'

export const EMPTY_CONFIG: ValidConfig = Object.freeze({ servers: Object.freeze([]) }) as unknown as ValidConfig

/**
 * Normalizes a whole configuration (every loose form normalize.ts accepts)
 * and runs the whole-config checks. Throws E_VALIDATION (every field problem,
 * or whole-config problems) or E_CONFLICT (listen addresses clash).
 */
export function parseConfig(raw: unknown): ValidConfig {
  const cfg = normalizeConfig(raw)
  throwProblems(
    found(
      [],
      listenProblems(cfg.servers),
      cfg.servers.flatMap((s, i) => filterProblems(s, `servers[${i}]`)),
    ),
  )
  return cfg as ValidConfig
}

/**
 * Parses a whole configuration document. A document with nothing but
 * whitespace and comments is the empty config. Throws E_BAD_JSON (syntax,
 * with line:column) or what parseConfig throws.
 */
export function parseConfigText(text: string): ValidConfig {
  const raw = parseJsonLooseOrEmpty(text)
  if (raw === EMPTY) return EMPTY_CONFIG
  return parseConfig(raw)
}

/**
 * The result of an edit of `prev` (an API write), checked and branded. A
 * server object of `next` that is one of prev's (the same object: edits
 * replace what they change and keep the rest) passed every field rule
 * already; every other server is read again by the field rules, and the
 * whole-config checks run over all of them. Problems name `servers[i]` of next.
 * Cost: the changed servers, plus one pass over the addresses.
 */
export function parseEdit(prev: ValidConfig, next: Config): ValidConfig {
  if (next === prev) return prev
  const kept = new Set<Server>(prev.servers)
  const fields: Problem[] = []
  const filters: Problem[] = []
  const servers = next.servers.map((s, i) => {
    if (kept.has(s)) return s
    const path = `servers[${i}]`
    let read: Server = s
    try {
      read = normalizeServer(s, path)
    } catch (err) {
      if (!(err instanceof BalancerError)) throw err
      fields.push(...err.problems)
      return s
    }
    filters.push(...filterProblems(read, path))
    return read
  })
  throwProblems(found(fields, listenProblems(servers), filters))
  return { servers } as ValidConfig
}

/**
 * Brands a config that is valid by construction, not by a check here: the
 * merge of a ValidConfig with validated discovered servers (its rules keep
 * every invariant), a ValidConfig reordered, or one received from the
 * process that validated it. Anything read from outside goes through the
 * parser instead.
 */
export function validByConstruction(cfg: Config): ValidConfig {
  return cfg as ValidConfig
}
