// The `errors` group of a server or route: custom error pages. When the
// route's answer has one of Statuses, whether the upstream sent it or the
// balancer wrote it itself (502 when no upstream answered, 503 when none is
// available, 504 on a timeout), the client gets the page from Page instead,
// with the same status:
//
//   Page      `http://host:port/path` (an upstream that renders pages; GET,
//             its body and Content-Type are sent) or `file:///path` (a
//             static file, read when needed; Content-Type from its
//             extension). `{status}` in it becomes the status:
//             `file:///srv/errors/{status}.html`.
//   Statuses  a list of 400-599 (a comma-separated string in labels);
//             default 404, 502, 503, 504.
//   Timeout   for fetching the page (default 2s, 10ms-1m). A page that
//             cannot be had in time, or is larger than 64 KiB, leaves the
//             balancer's own plain response (status kept).
//
// Labels: `balancer.errors.page=http://pages:8080/{status}.html`.

import type { Problem } from './errors.ts'
import type { Found } from './fields.ts'
import { describeValue, isMissing, joinPath, readFields } from './fields.ts'
import { formatDuration, parseDuration } from './duration.ts'
import type { ErrorPages } from './types.ts'

const FIELDS = ['Page', 'Statuses', 'Timeout'] as const
export const ERROR_PAGE_FIELDS: readonly string[] = FIELDS
export const DEFAULT_STATUSES: readonly number[] = [404, 502, 503, 504]

export function readErrorPages(raw: unknown, path: string, problems: Problem[]): ErrorPages | null {
  const before = problems.length
  const f = readFields(raw, path, FIELDS, problems)
  if (f === null) return null
  const page = readPage(f.Page, joinPath(path, 'Page'), problems)
  const statuses = readStatuses(f.Statuses, problems)
  let timeout = '2s'
  const t = f.Timeout
  if (t !== undefined && !isMissing(t)) {
    const v = t.value
    const ms = typeof v === 'number' && Number.isInteger(v) ? v : typeof v === 'string' && /[a-z]\s*$/i.test(v) ? parseDuration(v.toLowerCase()) : null
    if (ms === null || ms < 10 || ms > 60_000) problems.push({ path: t.path, message: `must be a duration between 10ms and 1m, got ${describeValue(v)}` })
    else timeout = formatDuration(ms)
  }
  if (problems.length > before || page === null || statuses === null) return null
  return { Page: page, Statuses: statuses, Timeout: timeout }
}

function readPage(f: Found | undefined, missingPath: string, problems: Problem[]): string | null {
  const v = f?.value
  const s = typeof v === 'string' ? v.trim() : ''
  let url: URL | null = null
  try {
    url = new URL(s.replaceAll('{status}', '500'))
  } catch {
    url = null
  }
  const ok =
    url !== null &&
    !/[\u0000-\u0020\u007f-\uffff]/.test(s) &&
    url.username === '' &&
    url.hash === '' &&
    ((url.protocol === 'http:' && url.hostname !== '') || (url.protocol === 'file:' && url.hostname === '' && url.search === '' && url.pathname.length > 1))
  if (!ok) {
    problems.push({ path: f?.path ?? missingPath, message: `required: where the page comes from, http://host:port/path or file:///path ({status} is replaced by the status), got ${describeValue(v)}` })
    return null
  }
  return s
}

function readStatuses(f: Found | undefined, problems: Problem[]): number[] | null {
  if (f === undefined || isMissing(f)) return [...DEFAULT_STATUSES]
  const v = f.value
  const list: unknown[] | null =
    typeof v === 'string'
      ? v
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== '')
      : Array.isArray(v)
        ? v
        : null
  if (list === null || list.length === 0) {
    problems.push({ path: f.path, message: `must be a list of statuses 400-599, got ${describeValue(v)}` })
    return null
  }
  const out: number[] = []
  let ok = true
  list.forEach((x, i) => {
    const n = typeof x === 'number' ? x : typeof x === 'string' && /^\d{3}$/.test(x) ? Number(x) : Number.NaN
    if (!Number.isInteger(n) || n < 400 || n > 599) {
      problems.push({ path: Array.isArray(v) ? `${f.path}[${i}]` : f.path, message: `must be a status 400-599, got ${describeValue(x)}` })
      ok = false
    } else if (!out.includes(n)) out.push(n)
  })
  return ok ? out.sort((a, b) => a - b) : null
}
