// Buffer#latin1Slice is what Buffer#toString('latin1', a, b) calls after its
// argument checks; Node has shipped it on every Buffer since v0.x but
// @types/node does not declare it. The parsers use it for the few strings a
// request needs (host, path, rewritten head) with offsets already validated;
// latin1Write is its counterpart (HTTP/2 header blocks are built with it).
export {}

declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string
    /** What Buffer#write(s, offset, 'latin1') calls: writes s from offset, returns the bytes written. */
    latin1Write(s: string, offset: number): number
  }
}
