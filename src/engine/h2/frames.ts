// HTTP/2 framing (RFC 9113 §4, §6): the codes, and the output path of a
// connection. Frames a connection sends are written into one module-wide
// scratch buffer and copied out in one piece per connection (its `out`
// list) when another connection starts writing or when it is flushed; large
// DATA payloads are not copied but queued by reference. Flushes are
// gathered: a connection written to during an event-loop turn is flushed
// once, after the turn's I/O callbacks (setImmediate), so the responses of
// several streams that arrived in one turn leave in one write (one TLS
// record, one system call).

export const FrameType = { Data: 0, Headers: 1, Priority: 2, RstStream: 3, Settings: 4, PushPromise: 5, Ping: 6, GoAway: 7, WindowUpdate: 8, Continuation: 9 } as const

export const Flag = { EndStream: 0x1, Ack: 0x1, EndHeaders: 0x4, Padded: 0x8, Priority: 0x20 } as const

export const H2Error = {
  NoError: 0,
  ProtocolError: 1,
  InternalError: 2,
  FlowControlError: 3,
  SettingsTimeout: 4,
  StreamClosed: 5,
  FrameSizeError: 6,
  RefusedStream: 7,
  Cancel: 8,
  CompressionError: 9,
  ConnectError: 10,
  EnhanceYourCalm: 11,
  InadequateSecurity: 12,
  Http11Required: 13,
} as const

export const Setting = { HeaderTableSize: 1, EnablePush: 2, MaxConcurrentStreams: 3, InitialWindowSize: 4, MaxFrameSize: 5, MaxHeaderListSize: 6, EnableConnectProtocol: 8 } as const

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
export const FRAME_HEADER = 9
/** SETTINGS_MAX_FRAME_SIZE's default and minimum: the largest frame the balancer accepts and the largest it sends unless told more. */
export const DEFAULT_MAX_FRAME = 16384
export const DEFAULT_WINDOW = 65535
export const MAX_WINDOW = 2 ** 31 - 1

/** The connection side of the output path: conn.ts's H2Conn has these. */
export interface Output {
  /** Sealed output, in order, waiting for flush(). */
  readonly out: Buffer[]
  outBytes: number
  /** In the pending-flush list. */
  flushQueued: boolean
  /** Writes the sealed output to the socket; returns false when the socket's buffer is full. */
  flush(): void
}

const SCRATCH_BYTES = 128 * 1024
const S = Buffer.allocUnsafeSlow(SCRATCH_BYTES)
/** Write position in S; the bytes from segStart belong to `owner`, not yet sealed. */
let pos = 0
let segStart = 0
let owner: Output | null = null

/** Copies the owner's unsealed bytes into its out list. */
function seal(): void {
  const o = owner
  if (o === null) return
  const n = pos - segStart
  if (n > 0) {
    const b = Buffer.allocUnsafe(n)
    S.copy(b, 0, segStart, pos)
    o.out.push(b)
    o.outBytes += n
  }
  owner = null
  pos = 0
  segStart = 0
}

/** Room for `need` bytes of `o`'s frames in the scratch; returns the position to write at (then call done()). */
export function reserve(o: Output, need: number): Buffer {
  if (owner !== o) {
    seal()
    owner = o
    schedule(o)
  }
  if (pos + need > SCRATCH_BYTES) {
    seal()
    owner = o
  }
  return S
}

/** Where the next frame bytes go (after reserve()). */
export function at(): number {
  return pos
}

/** The frame bytes up to `end` are written. */
export function done(end: number): void {
  pos = end
}

/** A buffer sent as it is, after what is written so far (a large DATA payload: no copy). */
export function appendRef(o: Output, data: Buffer): void {
  if (owner === o) seal()
  o.out.push(data)
  o.outBytes += data.length
  schedule(o)
}

/** Writes a frame header at S[p]. */
export function header(p: number, length: number, type: number, flags: number, stream: number): number {
  S[p] = length >>> 16
  S[p + 1] = (length >>> 8) & 0xff
  S[p + 2] = length & 0xff
  S[p + 3] = type
  S[p + 4] = flags
  S.writeUInt32BE(stream, p + 5)
  return p + FRAME_HEADER
}

/** A whole small frame with a 4-byte payload (WINDOW_UPDATE, RST_STREAM). */
export function frame32(o: Output, type: number, flags: number, stream: number, value: number): void {
  reserve(o, 13)
  const p = header(pos, 4, type, flags, stream)
  S.writeUInt32BE(value, p)
  pos = p + 4
}

export function goAwayFrame(o: Output, lastStream: number, code: number): void {
  reserve(o, 17)
  let p = header(pos, 8, FrameType.GoAway, 0, 0)
  S.writeUInt32BE(lastStream, p)
  S.writeUInt32BE(code, p + 4)
  p += 8
  pos = p
}

/** Makes sure `o` is flushed after this event-loop turn's I/O. */
const pending: Output[] = []
let scheduled = false

function flushAll(): void {
  scheduled = false
  seal()
  // Flushing may queue more (a drain callback writing again): those go in the next turn.
  const n = pending.length
  for (let i = 0; i < n; i++) {
    const o = pending[i] as Output
    o.flushQueued = false
    o.flush()
  }
  pending.splice(0, n)
}

export function schedule(o: Output): void {
  if (o.flushQueued) return
  o.flushQueued = true
  pending.push(o)
  if (!scheduled) {
    scheduled = true
    setImmediate(flushAll)
  }
}

/** Seals `o`'s bytes now (before its flush() runs outside flushAll). */
export function sealFor(o: Output): void {
  if (owner === o) seal()
}
