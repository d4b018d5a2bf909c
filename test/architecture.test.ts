// The boundaries CONVENTIONS.md asks us to enforce: the engine knows nothing
// of stores, sources or the admin API; the compiler does no I/O; sources do
// not import each other; nothing imports main.ts; what src/ loads is a DAG.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve, dirname } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = resolve(import.meta.dirname, '../src')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g)) out.push(m[1] ?? '')
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1] ?? '')
  return out.map((s) => (s.startsWith('.') ? relative(SRC, resolve(dirname(file), s)) : s))
}

const all = files(SRC).map((f) => ({ file: relative(SRC, f), deps: imports(f) }))

/**
 * What loading `entry` loads: its static imports, transitively (`import type`
 * loads nothing; a dynamic import() loads when it runs, so it is not followed).
 */
function loadedBy(entry: string): Set<string> {
  const seen = new Set<string>()
  const walk = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    if (!file.endsWith('.ts')) return
    const text = readFileSync(join(SRC, file), 'utf8')
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s(?!type\s)[^'"]*?from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? ''
      walk(spec.startsWith('.') ? relative(SRC, resolve(SRC, dirname(file), spec)) : spec)
    }
  }
  walk(entry)
  return seen
}

/**
 * Every cycle of what loading a module loads (static imports that are not
 * `import type`), one line per strongly connected component: its files, sorted.
 */
function cycles(): string[] {
  const graph = new Map<string, string[]>()
  for (const f of files(SRC)) {
    const file = relative(SRC, f)
    const text = readFileSync(f, 'utf8')
    const deps: string[] = []
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s(?!type\s)[^'"]*?from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? ''
      if (spec.startsWith('.')) deps.push(relative(SRC, resolve(dirname(f), spec)))
    }
    graph.set(file, deps)
  }
  // Tarjan's strongly connected components.
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: string[] = []
  let next = 0
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next)
    next++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0))
    }
    if (low.get(v) !== index.get(v)) return
    const scc: string[] = []
    for (;;) {
      const w = stack.pop() as string
      onStack.delete(w)
      scc.push(w)
      if (w === v) break
    }
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort().join(' -> '))
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return out
}

function violations(prefix: string, forbidden: (dep: string) => boolean): string[] {
  return all.filter((m) => m.file.startsWith(prefix)).flatMap((m) => m.deps.filter(forbidden).map((d) => `${m.file} -> ${d}`))
}

describe('module boundaries', () => {
  it('finds the source tree', () => {
    expect(all.length).toBeGreaterThan(10)
  })
  it('what src/ loads has no cycle (import type aside)', () => {
    expect(cycles()).toEqual([])
  })
  it('engine imports nothing from store, sources, admin, control or their libraries', () => {
    expect(
      violations(
        'engine/',
        (d) =>
          /^(store|sources|admin|control|cli|docker-api|kv|workers|observability)\/|^(fastify|@fastify\/|dockerode|pino|etcd3|node-zookeeper-client|consul|yaml|prom-client)/.test(d) ||
          d === 'main.ts',
      ),
    ).toEqual([])
  })
  it('engine takes from the compiler only the snapshot it is handed (its types and constants)', () => {
    expect(violations('engine/', (d) => d.startsWith('compiler/') && d !== 'compiler/snapshot.ts')).toEqual([])
  })
  it('health checks import nothing of the engine, the API, the store or discovery', () => {
    expect(violations('health/', (d) => /^(engine|admin|store|sources|control|cli|docker-api|kv|workers)\//.test(d) || d === 'main.ts')).toEqual([])
  })
  it('the admin API reaches the data plane only through the control plane (control/plane-view.ts): no engine, no compiler', () => {
    expect(violations('admin/', (d) => /^(engine|compiler|workers|health)\//.test(d))).toEqual([])
  })
  it('compiler is pure: no I/O modules, no store/engine/admin', () => {
    expect(violations('compiler/', (d) => /^node:(fs|net|http|https|dgram|child_process|dns|tls|worker_threads)/.test(d) || /^(store|sources|admin|engine|control)\//.test(d))).toEqual([])
  })
  // re2js: validation must compile a rewrite's regex to refuse what RE2 cannot run (pure code, no I/O).
  it('model depends on nothing but itself, node:crypto and re2js', () => {
    expect(violations('model/', (d) => !(d.startsWith('model/') || d === 'node:crypto' || d === 're2js'))).toEqual([])
  })
  it('sources do not import each other nor store internals', () => {
    // sources/<name>/ may use the shared files at the top of sources/ (the
    // interface, loop helpers); only those top-level files (start.ts composes
    // the sources) may import a source folder.
    expect(
      all
        .filter((m) => m.file.startsWith('sources/'))
        .flatMap((m) => {
          const parts = m.file.split('/')
          const own = parts.length > 2 ? parts[1] : null
          const crosses = (d: string): boolean => {
            const dp = d.split('/')
            return own !== null && dp[0] === 'sources' && dp.length > 2 && dp[1] !== own
          }
          return m.deps.filter((d) => crosses(d) || (d.startsWith('store/') && d !== 'store/store.ts')).map((d) => `${m.file} -> ${d}`)
        }),
    ).toEqual([])
  })
  it('the Docker API client is a library: it imports nothing of the balancer but itself (and dockerode, ssh2)', () => {
    expect(violations('docker-api/', (d) => !d.startsWith('node:') && !d.startsWith('docker-api/') && d !== 'dockerode' && d !== 'ssh2')).toEqual([])
  })
  it('the KV clients (kv/) shared by stores and registry sources import nothing of the balancer but themselves', () => {
    expect(violations('kv/', (d) => /^(model|store|sources|admin|control|engine|compiler|cli|docker-api|health|workers|observability)\/|^main\.ts$/.test(d))).toEqual([])
  })
  it('desired state has one owner: only control/ (and main.ts, which wires it) imports the store', () => {
    // store/file-watch.ts watches a file and holds no state: the certificate files use it too.
    // store/shared.ts is the shared space beside the configuration (certificates, ACME state,
    // leases), not desired state: tls/ keeps its certificates there.
    const store = (d: string): boolean => d.startsWith('store/') && d !== 'store/file-watch.ts' && d !== 'store/shared.ts'
    expect(all.filter((m) => !/^(control|store)\//.test(m.file) && m.file !== 'main.ts').flatMap((m) => m.deps.filter(store).map((d) => `${m.file} -> ${d}`))).toEqual([])
  })
  it('a worker loads only what the data plane needs', () => {
    const loaded = [...loadedBy('workers/worker.ts')]
    expect(loaded).toEqual(expect.arrayContaining(['engine/engine.ts', 'compiler/compile.ts', 'node:net']))
    // OpenSSL's state (node:tls, node:crypto) loads with the first TLS listener, not with the engine.
    expect(loaded.filter((d) => d === 'node:tls' || d === 'node:crypto')).toEqual([])
    // HTTP/2, TLS termination (engine/parts.ts) and node:zlib (rules/compress.ts) load with the first snapshot that needs them.
    expect(loaded.filter((d) => /^engine\/(h2\/|tls\/(accept|alpn|fallback|part)\.ts$|http1\/(h2c|h2-upstream)\.ts$)/.test(d) || d === 'node:zlib')).toEqual([])
    expect(
      loaded.filter((d) => /^(store|sources|admin|control|cli|docker-api|kv)\/|^(fastify|@fastify\/|pino|etcd3|node-zookeeper-client|consul|yaml|prom-client|cockatiel)/.test(d) || d === 'main.ts'),
    ).toEqual([])
  })
  it('the main process loads store backends, discovery and the API docs only when asked for', () => {
    const loaded = [...loadedBy('main.ts')]
    expect(loaded).toEqual(expect.arrayContaining(['control/control.ts', 'store/file.ts', 'fastify', 'pino']))
    // The flag parser reads --registry URLs and --docker endpoints (sources/registry-url.ts, docker-api/endpoint.ts: pure); the clients load with their source.
    const heavy = (d: string): boolean =>
      /^(etcd3|node-zookeeper-client|cockatiel|yaml|@fastify\/swagger|dockerode|consul|ssh2)/.test(d) ||
      /^store\/(etcd|consul|zookeeper)/.test(d) ||
      /^docker-api\/(?!endpoint\.ts)|^sources\/(start|registry-open|registry-source)\.ts$|^sources\/[a-z]+\//.test(d)
    expect(loaded.filter(heavy)).toEqual([])
  })
  it("no module imports node:http's exports statically: an ES import runs its getters, and WebSocket's loads undici (16 MiB in every process)", () => {
    const staticHttp = /(?:^|\n)\s*import\s(?!type\s)[^'"]*?from\s+['"]node:http['"]/
    expect(all.filter((m) => staticHttp.test(readFileSync(join(SRC, m.file), 'utf8'))).map((m) => m.file)).toEqual([])
  })
  it('nothing imports main.ts', () => {
    expect(all.flatMap((m) => m.deps.filter((d) => d === 'main.ts').map(() => m.file))).toEqual([])
  })
})
