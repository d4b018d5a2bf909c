// The file store's journal: `<config>.journal` beside the configuration
// file. At 10,000 routes the file is 10 MiB, and replacing it (temporary
// file, fsync, rename) took 10 to 60 ms per write on a plain disk; a write
// appends one record here instead, synced before it is acknowledged, and
// the store folds the journal into the file off the request path (file.ts).
//
// A record is the edit from one configuration to the next, framed as
//   u32 BE payload length | u32 BE CRC-32 of the payload | payload
// and the payload is
//   u32 BE meta length | meta (JSON) | the new servers' canonical bytes
// where meta is {from, to, list}: `from` and `to` are the revisions
// (validConfigHash) before and after, and `list` rebuilds the server list
// in order: [a, b] keeps servers a..b-1 of the configuration before, a
// number n takes the next n bytes of the new servers' text.
//
// Replay applies a record when its `from` is the revision reached so far
// and skips it otherwise (each applied record is checked as an API write
// is, and must reach its recorded `to`). The records form one chain (each `from` is the
// `to` before it), so from a file that holds any state of the chain
// (before the journal, or written by a fold that was cut short before the
// journal was emptied) replay ends at the chain's last state. A file whose
// revision is in no record's `from` was edited by hand: replay returns
// null and the store keeps the file (file.ts).
//
// A record cut short at the end of the file (a crash during the append,
// or a tail of zeros the file system left) is ignored: its write was never
// acknowledged. A complete record whose checksum fails is reported and
// nothing is replayed: the file was damaged, and guessing would drop
// acknowledged writes silently.

import { constants } from 'node:fs'
import { open, readFile, rename, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { validConfigHash, validConfigParts } from '../model/canonical.ts'
import { parseEdit } from '../model/parse.ts'
import { BalancerError, ErrorCode } from '../model/errors.ts'
import type { Config, Server, ValidConfig } from '../model/types.ts'
import { fileSignature, statSignature } from './file-watch.ts'

/** One decoded record. */
export interface JournalRecord {
  from: string
  to: string
  list: ReadonlyArray<readonly [number, number] | number>
  /** The new servers' text, in the order `list` takes it. */
  data: Buffer
}

const FRAME = 8

/** The framed record of the edit from `prev` (revision `from`) to `next` (revision `to`). */
export function encodeRecord(prev: ValidConfig, from: string, next: ValidConfig, to: string): Buffer {
  const at = new Map<Server, number>()
  prev.servers.forEach((s, i) => at.set(s, i))
  // Part i of the file is server (i - 1) / 2: validConfigParts keeps each server's bytes by object.
  const parts = next.servers.length === 0 ? [] : validConfigParts(next)
  const list: Array<[number, number] | number> = []
  const data: Buffer[] = []
  next.servers.forEach((s, i) => {
    const k = at.get(s)
    const last = list[list.length - 1]
    if (k === undefined) {
      const part = parts[1 + 2 * i] as Buffer
      list.push(part.length)
      data.push(part)
    } else if (Array.isArray(last) && last[1] === k) last[1] = k + 1
    else list.push([k, k + 1])
  })
  const meta = Buffer.from(JSON.stringify({ from, to, list }))
  const head = Buffer.alloc(4)
  head.writeUInt32BE(meta.length)
  const payload = Buffer.concat([head, meta, ...data])
  const frame = Buffer.alloc(FRAME)
  frame.writeUInt32BE(payload.length, 0)
  frame.writeUInt32BE(crc32(payload), 4)
  return Buffer.concat([frame, payload])
}

export interface DecodedJournal {
  /** Each whole record, with the byte offset where it ends. */
  records: Array<{ record: JournalRecord; end: number }>
  /** Bytes of whole records; past them, a torn record (never acknowledged). */
  validBytes: number
}

/** Throws E_STORE_UNAVAILABLE naming the journal and the record when a whole record fails its checksum. */
export function decodeJournal(bytes: Buffer, path: string): DecodedJournal {
  const records: DecodedJournal['records'] = []
  let off = 0
  while (bytes.length - off >= FRAME) {
    const len = bytes.readUInt32BE(off)
    // A zero length is no record (a record has at least its meta length): a tail of zeros, torn.
    if (len === 0 || bytes.length - off - FRAME < len) break
    const payload = bytes.subarray(off + FRAME, off + FRAME + len)
    const record = crc32(payload) === bytes.readUInt32BE(off + 4) ? parseRecord(payload) : null
    if (record === null) {
      throw new BalancerError(
        ErrorCode.StoreUnavailable,
        `${path}: record ${records.length + 1} (at byte ${off}) fails its checksum; the journal was damaged and is not replayed. Move it aside to start from the configuration file alone (the writes it holds from that record on are lost).`,
      )
    }
    off += FRAME + len
    records.push({ record, end: off })
  }
  return { records, validBytes: off }
}

function parseRecord(payload: Buffer): JournalRecord | null {
  if (payload.length < 4) return null
  const n = payload.readUInt32BE(0)
  if (4 + n > payload.length) return null
  try {
    const meta = JSON.parse(payload.subarray(4, 4 + n).toString('utf8')) as JournalRecord
    return { from: meta.from, to: meta.to, list: meta.list, data: payload.subarray(4 + n) }
  } catch {
    return null
  }
}

/**
 * The configuration the records lead to from `base` (revision `revision`);
 * null when no record applies (the file is not a state of the journal's
 * chain: a hand edit). Each record is checked as an API write is
 * (parseEdit: the servers it changed, and the whole-config checks), and
 * must reach the revision it recorded: a replay costs what its records
 * changed, not a parse of the whole configuration per record.
 */
export function replay(base: ValidConfig, revision: string, records: readonly JournalRecord[], path: string): { config: ValidConfig; revision: string } | null {
  let config = base
  let rev = revision
  let applied = 0
  for (const r of records) {
    if (r.from !== rev) continue
    const servers: unknown[] = []
    let off = 0
    for (const item of r.list) {
      if (typeof item === 'number') {
        if (off + item > r.data.length) throw damaged(path, applied, 'its servers are shorter than its list says')
        servers.push(JSON.parse(r.data.subarray(off, off + item).toString('utf8')))
        off += item
        continue
      }
      const [a, b] = item
      if (!(a >= 0 && b <= config.servers.length && a < b)) throw damaged(path, applied, `it keeps servers ${a}..${b - 1} of ${config.servers.length}`)
      for (let k = a; k < b; k++) servers.push(config.servers[k])
    }
    let next: ValidConfig
    try {
      next = parseEdit(config, { servers } as Config)
    } catch (err) {
      throw damaged(path, applied, err instanceof Error ? err.message : String(err))
    }
    const reached = validConfigHash(next)
    if (reached !== r.to) throw damaged(path, applied, `it leads to revision ${reached}, recorded ${r.to}`)
    config = next
    rev = reached
    applied++
  }
  return applied === 0 ? null : { config, revision: rev }
}

function damaged(path: string, applied: number, why: string): BalancerError {
  return new BalancerError(ErrorCode.StoreUnavailable, `${path}: record ${applied + 1} of the replay does not fit the configuration it edits (${why}); the journal is not replayed`)
}

/**
 * The journal file: appends synced records, and drops the ones a fold
 * wrote into the configuration file. Records since the last fold are kept
 * in memory too (a fold rewrites the ones appended while it ran).
 */
export class JournalFile {
  readonly path: string
  /** Records in the file since it was last emptied (those replayed at start and those appended). */
  readonly records: Buffer[] = []
  /** Bytes of whole records in the file; a torn tail past them is cut before the next append. */
  size = 0
  /** Changes whenever the file is emptied, replaced or set aside: a fold begun before is stale. */
  generation = 0
  #fh: FileHandle | null = null

  constructor(path: string) {
    this.path = path
  }

  /** The records replayed from the file (its whole records end at `validBytes`). */
  adopt(records: readonly Buffer[], validBytes: number): void {
    this.records.splice(0, this.records.length, ...records)
    this.size = validBytes
    this.generation++
  }

  /** Appends a record and syncs it; resolves with the file's signature after the write. */
  async append(rec: Buffer, mode: number, syncDir: () => Promise<void>): Promise<string> {
    if (this.#fh === null) {
      const fh = await open(this.path, constants.O_RDWR | constants.O_CREAT, mode)
      try {
        const st = await fh.stat()
        // A torn record past the whole ones: cut it, so a new record is not read as its continuation.
        if (st.size !== this.size) await fh.truncate(this.size)
        // A new file's directory entry must survive a crash as its data does.
        if (st.size === 0) await syncDir()
      } catch (err) {
        await fh.close()
        throw err
      }
      this.#fh = fh
    }
    const fh = this.#fh
    try {
      let done = 0
      while (done < rec.length) done += (await fh.write(rec, done, rec.length - done, this.size + done)).bytesWritten
      await fh.datasync()
    } catch (err) {
      // The record may be half written: cut back to the whole ones before the next append.
      await this.#reopen()
      throw err
    }
    this.size += rec.length
    this.records.push(rec)
    return statSignature(await fh.stat({ bigint: true }))
  }

  /**
   * Drops the first `n` records (a fold wrote their result into the
   * configuration file): the file is emptied, or replaced by the records
   * appended since (temporary file, fsync, rename). Resolves with the
   * file's signature afterwards.
   */
  async dropFirst(n: number, mode: number, syncDir: () => Promise<void>): Promise<string> {
    const rest = this.records.slice(n)
    await this.#reopen()
    if (rest.length === 0) {
      const fh = await open(this.path, constants.O_RDWR | constants.O_CREAT, mode)
      try {
        await fh.truncate(0)
        await fh.datasync()
      } finally {
        await fh.close()
      }
    } else {
      const tmp = `${this.path}.${process.pid}.tmp`
      const fh = await open(tmp, 'w', mode)
      try {
        for (const r of rest) await fh.write(r)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, this.path)
      await syncDir()
    }
    this.records.splice(0, this.records.length, ...rest)
    this.size = rest.reduce((s, r) => s + r.length, 0)
    this.generation++
    return fileSignature(this.path)
  }

  /** Renames the file to `<journal>.discarded` (replacing an earlier one): its records no longer apply. */
  async setAside(syncDir: () => Promise<void>): Promise<void> {
    await this.#reopen()
    await rename(this.path, `${this.path}.discarded`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
    await syncDir()
    this.records.length = 0
    this.size = 0
    this.generation++
  }

  /** Removes the file (the configuration file was written whole and holds every record). */
  async remove(syncDir: () => Promise<void>): Promise<void> {
    await this.#reopen()
    await unlink(this.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
    await syncDir()
    this.records.length = 0
    this.size = 0
    this.generation++
  }

  async close(): Promise<void> {
    await this.#reopen()
  }

  /** Closes the handle; the next append opens the file again (and cuts what is past `size`). */
  async #reopen(): Promise<void> {
    const fh = this.#fh
    this.#fh = null
    await fh?.close().catch(() => undefined)
  }
}

/** The whole journal, or null when there is none. */
export async function readJournal(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new BalancerError(ErrorCode.StoreUnavailable, `cannot read ${path}: ${(err as Error).message}`)
  }
}
