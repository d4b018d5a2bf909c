// A real admin API for tests: FileStore in a fresh temp directory, the
// control plane without an engine (it compiles every change and applies it
// nowhere), fastify listening on 127.0.0.1 port 0, and raw HTTP requests
// through node:http so the path and headers go on the wire exactly as
// written (`/server/:8080`).

import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildAdmin, startAdmin } from '../../src/admin/server.ts'
import { Control } from '../../src/control/control.ts'
import type { PlaneView } from '../../src/control/plane-view.ts'
import { FileStore } from '../../src/store/file.ts'

export interface Api {
  app: FastifyInstance
  store: FileStore
  control: Control
  file: string
  port: number
  /** The config file's bytes, or null when it does not exist yet. */
  fileText(): string | null
  send(method: string, path: string, opts?: SendOptions): Promise<Reply>
  close(): Promise<void>
}

export interface SendOptions {
  /** A string goes as is; anything else is JSON.stringify'd. */
  body?: unknown
  /** `content-type: ''` sends no content type at all. */
  headers?: Record<string, string>
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
}

export async function startApi(
  opts: { token?: string | null; bodyLimit?: number; fileText?: string; plane?: PlaneView; hostNames?: string[]; port?: number; writeLog?: Logger; drain?: (key: string, on: boolean) => boolean } = {},
): Promise<Api> {
  const dir = await mkdtemp(join(tmpdir(), 'balancer-admin-'))
  const file = join(dir, 'balancer.json')
  if (opts.fileText !== undefined) writeFileSync(file, opts.fileText)
  const store = new FileStore(file)
  const control = new Control({ store, initial: await store.load(), target: null })
  await control.start()
  const app = await buildAdmin({
    control,
    token: opts.token ?? null,
    logger: false,
    ...(opts.bodyLimit !== undefined ? { bodyLimit: opts.bodyLimit } : {}),
    ...(opts.hostNames !== undefined ? { hostNames: opts.hostNames } : {}),
    ...(opts.writeLog !== undefined ? { writeLog: opts.writeLog } : {}),
    ...(opts.drain !== undefined ? { drain: opts.drain } : {}),
    ...(opts.plane !== undefined ? { plane: opts.plane } : {}),
  })
  const { port } = await startAdmin(app, '127.0.0.1', opts.port ?? 0)
  return {
    app,
    store,
    control,
    file,
    port,
    fileText: () => {
      try {
        return readFileSync(file, 'utf8')
      } catch {
        return null
      }
    },
    send: (method, path, o = {}) => send(port, method, path, o),
    close: async () => {
      await app.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Like `curl -X METHOD --data BODY`: a body without an explicit content type goes as form-urlencoded. */
export function send(port: number, method: string, path: string, o: SendOptions = {}): Promise<Reply> {
  const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body)
  const headers: Record<string, string> = { ...o.headers }
  if (body !== undefined) {
    headers['content-length'] = String(Buffer.byteLength(body))
    if (headers['content-type'] === '') delete headers['content-type']
    else if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
    }
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = text === '' ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}
