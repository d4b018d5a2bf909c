// Writes service instances into ZooKeeper exactly as Apache Curator's
// service discovery (curator-x-discovery, ServiceDiscoveryImpl with
// JsonInstanceSerializer) does from Java: node `<base>/<name>/<id>`, EPHEMERAL
// for serviceType DYNAMIC (PERSISTENT otherwise), data = Jackson's JSON of
// ServiceInstance with its fields in declaration order and nulls written out:
// name, id, address, port (int or null), sslPort (int or null), payload
// (Jackson type id `@class` on an object payload), registrationTimeUTC (long),
// serviceType, uriSpec ({"parts":[{"value","variable"}]} or null), enabled.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createClient, CreateMode, Exception } from 'node-zookeeper-client'
import type { Client } from 'node-zookeeper-client'

export interface CuratorInstance {
  name: string
  id?: string
  address: string
  port: number | null
  sslPort?: number | null
  payload?: unknown
  serviceType?: 'DYNAMIC' | 'STATIC' | 'PERMANENT' | 'DYNAMIC_SEQUENTIAL'
  enabled?: boolean
}

/** `{scheme}://{address}:{port}`, Curator's default UriSpec as Spring Cloud Zookeeper registers it. */
export const DEFAULT_URI_SPEC = {
  parts: [
    { value: 'scheme', variable: true },
    { value: '://', variable: false },
    { value: 'address', variable: true },
    { value: ':', variable: false },
    { value: 'port', variable: true },
  ],
}

export function curatorJson(i: CuratorInstance & { id: string }): string {
  return JSON.stringify({
    name: i.name,
    id: i.id,
    address: i.address,
    port: i.port,
    sslPort: i.sslPort ?? null,
    payload: i.payload ?? null,
    registrationTimeUTC: Date.now(),
    serviceType: i.serviceType ?? 'DYNAMIC',
    uriSpec: DEFAULT_URI_SPEC,
    enabled: i.enabled ?? true,
  })
}

/** A registering application: its own ZooKeeper session, so its DYNAMIC instances die with it. */
export class CuratorClient {
  readonly #client: Client
  readonly #base: string

  private constructor(client: Client, base: string) {
    this.#client = client
    this.#base = base
  }

  static async connect(endpoint: string, base: string, sessionTimeout = 4000): Promise<CuratorClient> {
    const c = createClient(endpoint, { sessionTimeout, retries: 0 })
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('zookeeper: no session within 10 s')), 10_000)
      c.once('connected', () => {
        clearTimeout(t)
        resolve()
      })
      c.connect()
    })
    return new CuratorClient(c, base)
  }

  /** registerService(): creates parents, then the instance node; resolves with its id. */
  async register(i: CuratorInstance): Promise<string> {
    const id = i.id ?? randomUUID()
    const path = `${this.#base}/${i.name}/${id}`
    await new Promise<void>((resolve, reject) => this.#client.mkdirp(`${this.#base}/${i.name}`, (err) => (err ? reject(err) : resolve())))
    const mode = (i.serviceType ?? 'DYNAMIC') === 'DYNAMIC' ? CreateMode.EPHEMERAL : CreateMode.PERSISTENT
    await new Promise<void>((resolve, reject) => this.#client.create(path, Buffer.from(curatorJson({ ...i, id })), mode, (err) => (err ? reject(err) : resolve())))
    return id
  }

  /** updateService(): setData on the instance node. */
  async update(i: CuratorInstance & { id: string }): Promise<void> {
    await new Promise<void>((resolve, reject) => this.#client.setData(`${this.#base}/${i.name}/${i.id}`, Buffer.from(curatorJson(i)), -1, (err) => (err ? reject(err) : resolve())))
  }

  /** unregisterService(): deletes the node (absent is fine, as Curator ignores NoNode). */
  async unregister(name: string, id: string): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#client.remove(`${this.#base}/${name}/${id}`, -1, (err) => (err && !(err instanceof Exception && err.getCode() === Exception.NO_NODE) ? reject(err) : resolve())),
    )
  }

  /** Ends the session: ZooKeeper deletes its ephemeral nodes at once. */
  close(): void {
    this.#client.close()
  }
}

const CHILD = fileURLToPath(new URL('./services/curator-child.ts', import.meta.url))
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of children) p.kill('SIGKILL')
})

/** An application registered from its own process (services/curator-child.ts), to be killed without closing its session. */
export class CuratorProcess {
  readonly #p: ChildProcess

  private constructor(p: ChildProcess) {
    this.#p = p
  }

  /** Starts the process and resolves once its instance is registered (a DYNAMIC one: ephemeral). */
  static async register(endpoint: string, base: string, i: CuratorInstance, sessionTimeoutMs = 1000): Promise<CuratorProcess> {
    const p = spawn(process.execPath, [CHILD, endpoint, base, String(sessionTimeoutMs), JSON.stringify(i)], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.add(p)
    p.once('exit', () => children.delete(p))
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const t = setTimeout(() => reject(new Error('curator child: not registered within 15 s')), 15_000)
      p.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('REGISTERED ')) {
          clearTimeout(t)
          resolve()
        }
      })
      p.once('exit', (code, sig) => {
        clearTimeout(t)
        reject(new Error(`curator child exited before registering (${code ?? sig})`))
      })
    })
    return new CuratorProcess(p)
  }

  /** SIGKILL: the session is left to expire; resolves once the process is gone. */
  async kill(): Promise<void> {
    if (this.#p.exitCode !== null || this.#p.signalCode !== null) return
    const gone = new Promise<void>((r) => this.#p.once('exit', () => r()))
    this.#p.kill('SIGKILL')
    await gone
  }
}
