// Request bodies. The seed's own example is
//   curl -X POST localhost:9123/server --data '{"address":":8080",...}'
// and curl's --data sends `Content-Type: application/x-www-form-urlencoded`
// with the raw JSON as the body, so form, text/plain, JSON and a missing
// content type are all read as JSON text (comments allowed). PEM text (a
// certificate and its key, for PUT /cert/{name}) is taken as such: with
// `application/x-pem-file`, or any of those types when the body starts
// with `-----BEGIN` (what `curl --data-binary @site.pem` sends). Any other
// content type is refused with 415 rather than guessed at.

import type { FastifyInstance } from 'fastify'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import { parseJsonLoose } from '../model/parse.ts'

const JSON_TEXT_TYPES = new Set(['application/json', 'application/x-www-form-urlencoded', 'text/plain'])
const PEM_TYPES = new Set(['application/x-pem-file', 'application/pem-certificate-chain'])

/** A request body of PEM text (handlers that take PEM check for it; others refuse it as not an object). */
export class PemText {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

export function registerBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  // '*' is the only way to reach requests without a content type; it also sees
  // every unlisted type, which it refuses.
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    const header = req.headers['content-type']
    const media = header === undefined ? '' : (header.split(';')[0] ?? '').trim().toLowerCase()
    if (PEM_TYPES.has(media)) {
      done(null, new PemText(typeof body === 'string' ? body : body.toString('utf8')))
      return
    }
    if (media !== '' && !JSON_TEXT_TYPES.has(media) && !media.endsWith('+json')) {
      done(new BalancerError(ErrorCode.UnsupportedMedia, `content type "${media}" is not accepted; send JSON`), undefined)
      return
    }
    try {
      const text = typeof body === 'string' ? body : body.toString('utf8')
      if (text.trimStart().startsWith('-----BEGIN')) {
        done(null, new PemText(text))
        return
      }
      // An empty body is "no body": handlers treat it like an absent one.
      done(null, text.trim() === '' ? undefined : parseJsonLoose(text))
    } catch (err) {
      done(err as Error, undefined)
    }
  })
}

/**
 * Completes a body with values the URL already gives (`Target`/`Port` of an
 * upstream, `name` of a route, `address` of a server). A field already
 * present (in any letter case, as the model reads field names) is left alone;
 * the handler then checks it agrees with the URL. A body that is not an
 * object is returned as is for the normalizer to reject; no body becomes {}.
 */
/**
 * A server or route body without its top-level `status` (any letter case):
 * that is the read-only live state a GET adds, sent back by clients that PUT
 * what they got. It is never stored.
 */
export function withoutStatus(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) if (k.toLowerCase() !== 'status') out[k] = v
  return out
}

export function completeBody(body: unknown, fields: Readonly<Record<string, unknown>>): unknown {
  if (body === undefined || body === null) body = {}
  if (typeof body !== 'object' || Array.isArray(body)) return body
  const out: Record<string, unknown> = { ...(body as Record<string, unknown>) }
  const present = new Set(Object.keys(out).map((k) => k.toLowerCase()))
  for (const [name, value] of Object.entries(fields)) {
    if (!present.has(name.toLowerCase())) out[name] = value
  }
  return out
}
