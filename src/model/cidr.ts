// IP addresses and CIDRs (`10.0.0.0/8`, `2001:db8::/32`, `::1`) as written in
// configuration, checked without node:net (the model does no I/O and imports
// no networking module). The engine turns them into a node:net BlockList.

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const HEX = /^[0-9a-f]{1,4}$/i

/** 4 or 6 for an IP address, 0 otherwise. */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (V4.test(s)) return 4
  return isV6(s) ? 6 : 0
}

function isV6(s: string): boolean {
  if (s.length < 2 || s.length > 45) return false
  let groups = 8
  let body = s
  const lastColon = s.lastIndexOf(':')
  // An embedded IPv4 tail (`::ffff:10.0.0.1`) counts as two groups.
  if (lastColon >= 0 && s.includes('.', lastColon)) {
    if (!V4.test(s.slice(lastColon + 1))) return false
    body = `${s.slice(0, lastColon + 1)}0`
    groups = 7
  }
  const halves = body.split('::')
  if (halves.length > 2) return false
  const parts = (h: string): string[] | null => (h === '' ? [] : h.split(':').every((g) => HEX.test(g)) ? h.split(':') : null)
  const a = parts(halves[0] ?? '')
  const b = halves.length === 2 ? parts(halves[1] ?? '') : []
  if (a === null || b === null) return false
  const n = a.length + b.length
  return halves.length === 2 ? n < groups : n === groups
}

/** null when `c` is an address or CIDR; else why not. */
export function cidrProblem(c: string): string | null {
  const slash = c.indexOf('/')
  const ip = slash === -1 ? c : c.slice(0, slash)
  const family = ipFamily(ip)
  const bitsText = slash === -1 ? null : c.slice(slash + 1)
  const bits = bitsText === null ? 0 : /^[0-9]{1,3}$/.test(bitsText) ? Number(bitsText) : -1
  if (family === 0 || bits < 0 || bits > (family === 6 ? 128 : 32)) return `must be an IP address or a CIDR like 10.0.0.0/8 or 2001:db8::/32, got ${JSON.stringify(c)}`
  return null
}
