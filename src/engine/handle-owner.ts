// Which socket owns a raw libuv stream handle, and the native callbacks that
// reach it: one copy for client sockets (http1/client-socket.ts) and
// upstream sockets (upstream/raw-socket.ts). A write or shutdown request
// completes on its handle, a close on the handle itself; each finds its
// socket through the handle and hands it the result.

import type { Handle, Req } from './http1/client-socket.ts'

/** What a raw socket does with the completions of its handle's requests. */
export interface HandleOwner {
  afterWrite(bytes: number, status: number): void
  afterShutdown(status: number): void
  afterClose(): void
}

const OWNER = Symbol('balancer.handle-owner')

type Owned = Record<symbol, HandleOwner | null>

export function own(handle: Handle, owner: HandleOwner): void {
  ;(handle as unknown as Owned)[OWNER] = owner
}

export function ownerOf<T extends HandleOwner>(handle: Handle): T | null {
  return ((handle as unknown as Owned)[OWNER] ?? null) as T | null
}

/** A write request's completion (WriteWrap.oncomplete). */
export function afterWrite(this: Req, status: number): void {
  const s = ownerOf(this.handle)
  this.buffer = null
  if (s !== null) s.afterWrite(this.bytes, status)
}

/** A shutdown request's completion (ShutdownWrap.oncomplete). */
export function afterShutdown(this: Req, status: number): void {
  const s = ownerOf(this.handle)
  if (s !== null) s.afterShutdown(status)
}

/** The handle's close callback: the handle forgets its socket. */
export function afterClose(this: Handle): void {
  const s = ownerOf(this)
  ;(this as unknown as Owned)[OWNER] = null
  if (s !== null) s.afterClose()
}
