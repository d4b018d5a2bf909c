// Host names in two roles: an upstream's Target (what we connect to) and a
// filter's Hosts entry (what a request's Host header is matched against).
// Both return the canonical spelling or an error message; the caller adds the
// path.

import { canonicalIPv6, isIPv4, isIPv6 } from './address.ts'

/** Underscores are allowed: Docker and Swarm service names (`stack_web`) resolve on their networks. */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i

function isDnsName(name: string): boolean {
  if (name === '' || name.length > 253) return false
  // All digits and dots is an IPv4 address or nothing; `1.2.3.999` is not a name.
  if (/^[0-9.]+$/.test(name)) return false
  return name.split('.').every((l) => LABEL.test(l))
}

type Checked = { value: string } | { error: string }

/**
 * An upstream Target: a host name, IPv4, or IPv6 with or without brackets.
 * Stored trimmed; IPv6 without brackets, compressed; names keep their case.
 */
export function checkTarget(raw: string): Checked {
  const t = raw.trim()
  if (t === '') return { error: 'must not be empty' }
  if (/\s/.test(t)) return { error: `must not contain spaces, got ${JSON.stringify(raw)}` }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    let hint = ''
    try {
      const u = new URL(t)
      hint = `; write ${JSON.stringify(u.hostname.replace(/^\[|\]$/g, ''))}` + (u.port === '' ? '' : ` and put ${u.port} in Port`)
    } catch {
      // no hint: the URL itself is malformed
    }
    return { error: `must be a host name or IP address without a scheme, got ${JSON.stringify(t)}${hint}` }
  }
  if (t.includes('/')) return { error: `must be a host name or IP address without a path, got ${JSON.stringify(t)}` }
  const v6 = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t
  if (isIPv6(v6)) return { value: canonicalIPv6(v6) }
  if (/^(\[[^\]]*\]|[^:]*):[0-9]*$/.test(t)) {
    return { error: `must not include a port, got ${JSON.stringify(t)}; put the port in Port` }
  }
  if (/^[0-9.]+$/.test(t)) {
    return isIPv4(t) ? { value: t } : { error: `is not a valid IPv4 address, got ${JSON.stringify(t)}` }
  }
  const name = t.endsWith('.') ? t.slice(0, -1) : t
  if (!isDnsName(name)) return { error: `must be a host name or IP address, got ${JSON.stringify(t)}` }
  return { value: t }
}

/**
 * A filter Hosts entry: lower-cased; a DNS name, IPv4, `[IPv6]` (brackets
 * added when missing, as in a Host header) or a `*.domain` wildcard. A port
 * is refused rather than stripped: matching ignores the port, and silently
 * dropping it would hide that.
 */
export function checkFilterHost(raw: string): Checked {
  const h = raw.trim().toLowerCase()
  if (h === '') return { error: 'must not be empty (an empty Hosts list matches every host)' }
  if (h === '*') return { error: 'use an empty Hosts list to match every host' }
  if (h.startsWith('*.')) {
    const rest = h.slice(2)
    if (rest.includes('*')) return { error: `a wildcard is allowed only as a leading "*.", got ${JSON.stringify(raw)}` }
    if (/:[0-9]*$/.test(rest)) return portError(raw)
    if (!isDnsName(rest)) return { error: `is not a valid wildcard host, got ${JSON.stringify(raw)}` }
    return { value: h }
  }
  if (h.includes('*')) return { error: `a wildcard is allowed only as a leading "*.", got ${JSON.stringify(raw)}` }
  if (h.startsWith('[')) {
    const close = h.indexOf(']')
    const inner = close === -1 ? '' : h.slice(1, close)
    if (close !== -1 && isIPv6(inner)) {
      if (close === h.length - 1) return { value: `[${canonicalIPv6(inner)}]` }
      if (/^:[0-9]*$/.test(h.slice(close + 1))) return portError(raw)
    }
    return { error: `is not a valid [IPv6] host, got ${JSON.stringify(raw)}` }
  }
  if (isIPv6(h)) return { value: `[${canonicalIPv6(h)}]` }
  if (/^[^:]+:[0-9]*$/.test(h)) return portError(raw)
  if (/^[0-9.]+$/.test(h)) {
    return isIPv4(h) ? { value: h } : { error: `is not a valid IPv4 address, got ${JSON.stringify(raw)}` }
  }
  if (!isDnsName(h)) return { error: `must be a host name, IP address or "*.domain", got ${JSON.stringify(raw)}` }
  return { value: h }
}

function portError(raw: string): Checked {
  return {
    error: `must not include a port (the port is ignored in matching); remove it, got ${JSON.stringify(raw)}`,
  }
}
