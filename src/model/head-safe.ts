// Text that ends up in, or is matched against, an HTTP request head: paths,
// path prefixes, host names, header values. Whatever source it came from (the
// API, the config file, a KV value, a Docker label), the model allows only
// visible ASCII (0x21-0x7e) there. CR, LF and NUL would end a header line or
// the head early (header injection, request smuggling into an upstream), and
// characters above 0x7e are worse than they look: the engine and the health
// prober write heads as latin1, which keeps only the low byte of each
// character, so "\u010d\u010a" goes out as CR LF. A request target never
// carries raw non-ASCII anyway (RFC 9112): it is percent-encoded, and so must
// be a path written here.

/** null when s is visible ASCII only; else a message naming the first offending character. */
export function headTextProblem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x21 && c <= 0x7e) continue
    const name = c === 0x0d ? 'CR' : c === 0x0a ? 'LF' : c === 0 ? 'NUL' : c === 0x20 ? 'a space' : c === 0x09 ? 'a tab' : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`
    const hint = c > 0x7e ? ' (percent-encode non-ASCII characters)' : ''
    return `must be visible ASCII only: ${name} at position ${i + 1} would break or alter a request head${hint}, got ${JSON.stringify(s)}`
  }
  return null
}
