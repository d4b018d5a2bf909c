// Durations as people write them: `500ms`, `2s`, `1.5s`, `1m`; a bare number
// is seconds. One parser for flags, environment variables and config fields.

/** Milliseconds, rounded; null when `text` is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (m === null) return null
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return Math.round(unit === 'ms' ? n : unit === 'm' ? n * 60_000 : n * 1000)
}
