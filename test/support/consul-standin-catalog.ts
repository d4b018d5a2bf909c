// The Consul STAND-IN's catalog and health endpoints (see consul-standin.ts),
// following Consul's documented behaviour for what the registry source uses:
//
// - PUT /v1/catalog/register {Node, Address, Service{ID, Service, Tags,
//   Address, Meta, Port}, Check | Checks [{CheckID, Name, Status, ServiceID}]}:
//   creates or replaces the node, the service instance (by ID, default the
//   service name) and the checks. Meta keys must match [A-Za-z0-9_-]+ (Consul
//   refuses dots: "Key contains invalid characters"), 400 otherwise.
// - PUT /v1/catalog/deregister {Node[, ServiceID | CheckID]}.
// - GET /v1/catalog/services: {name: [tags of every instance]}; `?filter=`
//   is evaluated against each service instance and only matching ones are
//   listed (Consul's filtering). The stand-in knows one expression form,
//   `ServiceMeta.<key> == "<value>"` (and `or` of such); any other filter
//   is a 400 naming the stand-in, never silently ignored.
// - GET /v1/health/service/<name>: [{Node, Service, Checks}] with the node's
//   own checks (ServiceID "") and the instance's; `?passing` keeps entries
//   whose every check is passing; `?tag=` (repeatable) keeps those with all
//   the tags.
// - Indexes: every change takes the next raft index. A service's query index
//   is the last index at which anything in its answer changed; a service no
//   longer (or never) registered answers with the index of the last change to
//   any service, as Consul falls back to the services table's index; never
//   0 (Consul raises a zero index to 1).

export interface CatalogCheck {
  CheckID: string
  Name: string
  Status: 'passing' | 'warning' | 'critical'
  ServiceID: string
  Node: string
  CreateIndex: number
  ModifyIndex: number
}

export interface CatalogService {
  ID: string
  Service: string
  Tags: string[]
  Address: string
  Meta: Record<string, string>
  Port: number
  CreateIndex: number
  ModifyIndex: number
}

interface CatalogNode {
  Node: string
  Address: string
  CreateIndex: number
  ModifyIndex: number
  services: Map<string, CatalogService>
  checks: Map<string, CatalogCheck>
}

export interface CatalogSnapshot {
  nodes: Array<Omit<CatalogNode, 'services' | 'checks'> & { services: CatalogService[]; checks: CatalogCheck[] }>
  serviceIndex: Array<[string, number]>
  servicesIndex: number
}

const META_KEY = /^[A-Za-z0-9_-]+$/

/** `ServiceMeta.key == "value"` (or several joined by `or`) -> a predicate; anything else: the stand-in cannot evaluate it. */
export function parseFilter(text: string): ((s: CatalogService) => boolean) | { error: string } {
  const terms = text.split(/\s+or\s+/)
  const tests: Array<(s: CatalogService) => boolean> = []
  for (const t of terms) {
    const m = /^\s*ServiceMeta\.([A-Za-z0-9_-]+)\s*==\s*"([^"\\]*)"\s*$/.exec(t)
    if (m === null) return { error: `stand-in: filter ${JSON.stringify(text)} is not of the one form it evaluates, ServiceMeta.<key> == "<value>"` }
    const [, key, value] = m as unknown as [string, string, string]
    tests.push((s) => s.Meta[key] === value)
  }
  return (s) => tests.some((f) => f(s))
}

export class Catalog {
  #nodes = new Map<string, CatalogNode>()
  /** Service name -> the last index anything in its health answer changed. */
  #serviceIndex = new Map<string, number>()
  /** The last index at which any service changed (Consul's services table index). */
  #servicesIndex = 0

  /** Applies a register body at index `at`; returns an error message for a 400, else null. */
  register(body: unknown, at: number): string | null {
    const b = (body ?? {}) as Record<string, unknown>
    const nodeName = typeof b.Node === 'string' ? b.Node : ''
    if (nodeName === '') return 'Must provide node'
    const address = typeof b.Address === 'string' ? b.Address : ''
    if (address === '') return 'Must provide address'
    const svc = b.Service as Record<string, unknown> | undefined
    if (svc !== undefined) {
      if (typeof svc.Service !== 'string' || svc.Service === '') return 'Must provide service name with ID'
      const meta = (svc.Meta ?? {}) as Record<string, unknown>
      for (const [k, v] of Object.entries(meta)) {
        if (!META_KEY.test(k)) return `Invalid Service Meta: Couldn't load metadata pair ('${k}', '${String(v)}'): Key contains invalid characters`
        if (k.startsWith('consul-')) return `Invalid Service Meta: Couldn't load metadata pair ('${k}', '${String(v)}'): Key prefix 'consul-' is reserved for internal use`
      }
    }
    let node = this.#nodes.get(nodeName)
    const touched = new Set<string>()
    let structural = svc !== undefined
    if (node === undefined) {
      node = { Node: nodeName, Address: address, CreateIndex: at, ModifyIndex: at, services: new Map(), checks: new Map() }
      this.#nodes.set(nodeName, node)
      structural = true
    } else if (node.Address !== address) {
      node.Address = address
      node.ModifyIndex = at
      structural = true
      for (const s of node.services.values()) touched.add(s.Service)
    }
    if (svc !== undefined) {
      const name = svc.Service as string
      const id = typeof svc.ID === 'string' && svc.ID !== '' ? svc.ID : name
      const prev = node.services.get(id)
      if (prev !== undefined && prev.Service !== name) touched.add(prev.Service)
      node.services.set(id, {
        ID: id,
        Service: name,
        Tags: Array.isArray(svc.Tags) ? (svc.Tags as string[]) : [],
        Address: typeof svc.Address === 'string' ? svc.Address : '',
        Meta: Object.fromEntries(Object.entries((svc.Meta ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)])),
        Port: typeof svc.Port === 'number' ? svc.Port : 0,
        CreateIndex: prev?.CreateIndex ?? at,
        ModifyIndex: at,
      })
      touched.add(name)
    }
    const checks = [...(b.Check === undefined ? [] : [b.Check]), ...(Array.isArray(b.Checks) ? b.Checks : [])] as Array<Record<string, unknown>>
    for (const c of checks) {
      const id = typeof c.CheckID === 'string' && c.CheckID !== '' ? c.CheckID : String(c.Name ?? '')
      const prev = node.checks.get(id)
      const serviceId = typeof c.ServiceID === 'string' ? c.ServiceID : ''
      const status = c.Status === 'passing' || c.Status === 'warning' || c.Status === 'critical' ? c.Status : 'critical'
      node.checks.set(id, { CheckID: id, Name: String(c.Name ?? id), Status: status, ServiceID: serviceId, Node: nodeName, CreateIndex: prev?.CreateIndex ?? at, ModifyIndex: at })
      this.#touchCheck(node, serviceId, touched)
    }
    this.#bump(touched, at, structural)
    return null
  }

  /** Applies a deregister body at index `at`; returns an error message for a 400, else null. */
  deregister(body: unknown, at: number): string | null {
    const b = (body ?? {}) as Record<string, unknown>
    const node = this.#nodes.get(typeof b.Node === 'string' ? b.Node : '')
    if (node === undefined) return typeof b.Node === 'string' && b.Node !== '' ? null : 'Must provide node'
    const touched = new Set<string>()
    let structural = true
    if (typeof b.ServiceID === 'string' && b.ServiceID !== '') {
      const s = node.services.get(b.ServiceID)
      if (s === undefined) return null
      node.services.delete(b.ServiceID)
      for (const [id, c] of node.checks) if (c.ServiceID === b.ServiceID) node.checks.delete(id)
      touched.add(s.Service)
    } else if (typeof b.CheckID === 'string' && b.CheckID !== '') {
      const c = node.checks.get(b.CheckID)
      if (c === undefined) return null
      node.checks.delete(b.CheckID)
      structural = false
      this.#touchCheck(node, c.ServiceID, touched)
    } else {
      for (const s of node.services.values()) touched.add(s.Service)
      this.#nodes.delete(node.Node)
    }
    this.#bump(touched, at, structural)
    return null
  }

  services(match: (s: CatalogService) => boolean = () => true): { index: number; body: Record<string, string[]> } {
    const out: Record<string, Set<string>> = {}
    for (const n of this.#nodes.values()) for (const s of n.services.values()) if (match(s)) for (const t of s.Tags) (out[s.Service] ??= new Set()).add(t)
    for (const n of this.#nodes.values()) for (const s of n.services.values()) if (match(s)) out[s.Service] ??= new Set()
    const body = Object.fromEntries(
      Object.entries(out)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, [...v].sort()]),
    )
    // Consul never answers a blocking query with index 0 (it raises it to 1).
    return { index: Math.max(1, this.#servicesIndex), body }
  }

  health(name: string, passing: boolean, tags: readonly string[]): { index: number; body: unknown[] } {
    const body: unknown[] = []
    for (const n of [...this.#nodes.values()].sort((a, b) => (a.Node < b.Node ? -1 : 1))) {
      for (const s of n.services.values()) {
        if (s.Service !== name) continue
        if (!tags.every((t) => s.Tags.includes(t))) continue
        const checks = [...n.checks.values()].filter((c) => c.ServiceID === '' || c.ServiceID === s.ID)
        if (passing && checks.some((c) => c.Status !== 'passing')) continue
        body.push({
          Node: { ID: '', Node: n.Node, Address: n.Address, Datacenter: 'dc1', TaggedAddresses: null, Meta: {}, CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex },
          Service: { ...s, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, TaggedAddresses: null },
          Checks: checks.map((c) => ({ ...c, Notes: '', Output: '', ServiceName: s.Service, ServiceTags: s.Tags, Type: '' })),
        })
      }
    }
    return { index: Math.max(1, this.#serviceIndex.get(name) ?? this.#servicesIndex), body }
  }

  snapshot(): CatalogSnapshot {
    return {
      nodes: [...this.#nodes.values()].map((n) => ({ ...n, services: [...n.services.values()].map((s) => ({ ...s })), checks: [...n.checks.values()].map((c) => ({ ...c })) })),
      serviceIndex: [...this.#serviceIndex],
      servicesIndex: this.#servicesIndex,
    }
  }

  restore(s: CatalogSnapshot): void {
    this.#nodes = new Map(s.nodes.map((n) => [n.Node, { ...n, services: new Map(n.services.map((x) => [x.ID, { ...x }])), checks: new Map(n.checks.map((c) => [c.CheckID, { ...c }])) }]))
    this.#serviceIndex = new Map(s.serviceIndex)
    this.#servicesIndex = s.servicesIndex
  }

  #touchCheck(node: CatalogNode, serviceId: string, touched: Set<string>): void {
    if (serviceId === '') for (const s of node.services.values()) touched.add(s.Service)
    else {
      const s = node.services.get(serviceId)
      if (s !== undefined) touched.add(s.Service)
    }
  }

  /** structural: a node or service changed (not only a check): the services table's index moves. */
  #bump(touched: ReadonlySet<string>, at: number, structural: boolean): void {
    if (structural) this.#servicesIndex = at
    for (const name of touched) {
      const still = [...this.#nodes.values()].some((n) => [...n.services.values()].some((s) => s.Service === name))
      if (still) this.#serviceIndex.set(name, at)
      else this.#serviceIndex.delete(name)
    }
  }
}
