// Typed errors with stable codes. Every code has a row in docs/errors.md.

export interface Problem {
  /** Where: `servers[0].upstreams[1].Port`, `body.address`, `If-Match`. */
  path: string
  message: string
}

export const ErrorCode = {
  Validation: 'E_VALIDATION', // 400: the config or body is invalid; `problems` lists every one
  BadJson: 'E_BAD_JSON', // 400: the body is not JSON (comments allowed)
  NotFound: 'E_NOT_FOUND', // 404: no such server / route / upstream / fallback
  Exists: 'E_EXISTS', // 409: POST of something that already exists
  Conflict: 'E_CONFLICT', // 409: the change clashes with another server (same port, ...)
  Precondition: 'E_PRECONDITION', // 412: If-Match does not match the current ETag
  PreconditionRequired: 'E_PRECONDITION_REQUIRED', // 428: reserved
  Unauthorized: 'E_UNAUTHORIZED', // 401: missing or wrong token
  CrossOrigin: 'E_CROSS_ORIGIN', // 403: a browser sent the request from another origin
  Misdirected: 'E_MISDIRECTED', // 421: the Host is not a name the admin API is reached by (DNS rebinding)
  TooLarge: 'E_TOO_LARGE', // 413: request body over the limit
  UnsupportedMedia: 'E_UNSUPPORTED_MEDIA', // 415: body content type not JSON / form
  ReadOnly: 'E_READ_ONLY', // 409: the object was discovered (Docker, ...) and is read-only in the API
  StoreUnavailable: 'E_STORE_UNAVAILABLE', // 503: the store cannot be read or written now
  Listen: 'E_LISTEN', // the engine could not bind an address (in use, permission)
  CannotListen: 'E_CANNOT_LISTEN', // 409: a write adds an address this instance cannot listen on; nothing stored
  TlsCert: 'E_TLS_CERT', // 400: a certificate or key cannot be read, parsed or used (names it)
  Internal: 'E_INTERNAL', // 500
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const STATUS: Record<ErrorCode, number> = {
  E_VALIDATION: 400,
  E_BAD_JSON: 400,
  E_NOT_FOUND: 404,
  E_EXISTS: 409,
  E_CONFLICT: 409,
  E_PRECONDITION: 412,
  E_PRECONDITION_REQUIRED: 428,
  E_UNAUTHORIZED: 401,
  E_CROSS_ORIGIN: 403,
  E_MISDIRECTED: 421,
  E_TOO_LARGE: 413,
  E_UNSUPPORTED_MEDIA: 415,
  E_READ_ONLY: 409,
  E_STORE_UNAVAILABLE: 503,
  E_LISTEN: 409,
  E_CANNOT_LISTEN: 409,
  E_TLS_CERT: 400,
  E_INTERNAL: 500,
}

export class BalancerError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly problems: Problem[]
  constructor(code: ErrorCode, message: string, problems: Problem[] = []) {
    super(message)
    this.name = 'BalancerError'
    this.code = code
    this.status = STATUS[code]
    this.problems = problems
  }
  toJSON(): { code: ErrorCode; message: string; problems: Problem[] } {
    return { code: this.code, message: this.message, problems: this.problems }
  }
}

/** Builds one E_VALIDATION error listing every problem; message is the problems joined. */
export function validationError(problems: Problem[]): BalancerError {
  return new BalancerError(ErrorCode.Validation, problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems)
}
