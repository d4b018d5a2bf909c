// Durations as people write them: `500ms`, `2s`, `1.5s`, `1m`, `1h`; a bare
// number is seconds. One parser for flags, environment variables and config fields.

/** Milliseconds, rounded; null when `text` is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) return null
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return Math.round(unit === 'ms' ? n : unit === 'h' ? n * 3_600_000 : unit === 'm' ? n * 60_000 : n * 1000)
}

/** Milliseconds in the largest unit that divides them exactly: 60000 -> `1m`, 1500 -> `1500ms`, 2000 -> `2s`. */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms > 0 && ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
