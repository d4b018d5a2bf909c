// The shape check of Node's TLSWrap binding (socket.ts wraps accepted
// handles in it), apart from socket.ts so that the engine decides at bind
// time whether a listener's clients go on raw handles without loading the
// TLS code: that loads with the first TLS listener (engine/parts.ts).

import type { Bindings, Handle } from '../http1/client-socket.ts'
import { streamBindings } from '../http1/client-socket.ts'
import type { NativeContext } from './profile.ts'
import type { TlsHandle } from './socket.ts'

export interface TlsBindings {
  wrap(handle: Handle, context: NativeContext, isServer: boolean, hasActiveWrite: boolean): TlsHandle
}

const TLS_METHODS = [
  'setALPNProtocols',
  'enableCertCb',
  'certCbDone',
  'getALPNNegotiatedProtocol',
  'getServername',
  'getProtocol',
  'destroySSL',
  'readStart',
  'readStop',
  'writeBuffer',
  'writev',
  'shutdown',
  'useUserBuffer',
]

function load(): TlsBindings | null {
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (typeof binding !== 'function') return null
    const tw = binding('tls_wrap')
    const TLSWrap = tw.TLSWrap as { prototype: Record<string, unknown> } | undefined
    if (typeof tw.wrap !== 'function' || TLSWrap === undefined || TLS_METHODS.some((m) => typeof TLSWrap.prototype[m] !== 'function')) return null
    return tw as unknown as TlsBindings
  } catch {
    return null
  }
}

const T = load()

/** The TLS and stream bindings, or null where this Node's differ (then listeners use tls.TLSSocket). */
export function tlsBindings(): { tls: TlsBindings; stream: Bindings } | null {
  const stream = streamBindings()
  return T === null || stream === null ? null : { tls: T, stream }
}
