// Entity tags and preconditions. A resource's ETag is the strong tag
// `"<configHash(resource)>"`, so equal content means equal tag on every
// instance and after every restart.
//
// If-Match on a write succeeds when any listed tag equals the current ETag of
// the resource the URL names OR of any resource containing it (its route, its
// server, the whole config): an unchanged container implies an unchanged
// resource, so a client may guard a nested write with the server's ETag.
// `If-Match: *` means "the named resource must exist". The check runs inside
// the store mutation, under the store's write lock, so it is atomic with the write.
//
// Tags are of stored state. A GET of something only discovery serves (a
// discovered server, route or member) gets a weak tag of what is served: a
// cache may use it, but If-Match compares strongly, so it never guards a
// write (there is nothing stored to guard).

import type { FastifyReply, FastifyRequest } from 'fastify'
import { configHash } from '../model/canonical.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'

export function etagOf(resource: unknown): string {
  return `"${configHash(resource)}"`
}

/**
 * Throws E_PRECONDITION when header is present and does not match.
 * target is undefined when the named resource does not exist (yet).
 */
export function checkIfMatch(header: string | undefined, target: unknown, enclosing: readonly unknown[]): void {
  if (header === undefined) return
  const tags = header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
  if (tags.includes('*')) {
    if (target !== undefined) return
    throw new BalancerError(ErrorCode.Precondition, 'If-Match: * requires the resource to exist, and it does not', [{ path: 'If-Match', message: 'the resource does not exist' }])
  }
  const current = (target === undefined ? enclosing : [target, ...enclosing]).map(etagOf)
  // Strong comparison: weak tags (W/"...") never match.
  if (tags.some((t) => current.includes(t))) return
  throw new BalancerError(ErrorCode.Precondition, 'the resource changed since it was read (If-Match does not match its current ETag); GET it again and retry', [
    { path: 'If-Match', message: `current ETag is ${current[0] ?? 'none'}` },
  ])
}

/**
 * Sends value with its ETag; a GET whose If-None-Match lists that tag gets
 * 304. `body` (text, or UTF-8 bytes) replaces the serialized value; `live` marks a body that adds
 * live state to the tagged value: the tag still guards writes, but a 304
 * would hide state that changed, so such a GET always answers in full.
 */
export function sendTagged(req: FastifyRequest, reply: FastifyReply, status: number, value: unknown, body?: string | Buffer, live = false, weak = false) {
  const tag = weak ? `W/${etagOf(value)}` : etagOf(value)
  reply.header('etag', tag)
  const inm = req.headers['if-none-match']
  if (!live && (req.method === 'GET' || req.method === 'HEAD') && inm !== undefined && matchesAny(inm, tag)) {
    return reply.code(304).send()
  }
  reply.code(status)
  if (body !== undefined) return reply.type('application/json; charset=utf-8').send(body)
  return reply.send(value)
}

/** What a GET of one resource answers. */
export interface Read {
  /** The stored resource: its tag guards writes. undefined when only discovery serves it. */
  stored: unknown
  /** The served resource: tagged (weakly) when there is no stored one, and sent when there is no body. */
  served: unknown
  /** The body, when it is not the resource as is (origins, live status). */
  body?: string
  /** The body shows state that changes without the tag (discovered parts, live status): never 304. */
  live?: boolean
}

export function sendRead(req: FastifyRequest, reply: FastifyReply, r: Read) {
  const weak = r.stored === undefined
  return sendTagged(req, reply, 200, weak ? r.served : r.stored, r.body ?? JSON.stringify(r.served), r.live ?? false, weak)
}

function matchesAny(header: string, tag: string): boolean {
  // If-None-Match uses weak comparison: W/"x" matches "x", and "x" matches W/"x".
  const opaque = tag.startsWith('W/') ? tag.slice(2) : tag
  return header.split(',').some((t) => {
    const s = t.trim()
    return s === '*' || s === opaque || s === `W/${opaque}`
  })
}
