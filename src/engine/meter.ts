// Traffic counters of the data plane. Requests are counted in plain numeric
// arrays on records the request already holds (its RouteRuntime, its
// Listener): no Map lookup, no allocation and no metrics-library call per
// request. Everything is read and summed when someone asks (traffic()), a
// scrape or the dashboard's sampler, never per request.
//
// A RouteMeter belongs to a route id and outlives snapshots (like the retry
// budget), so counts carry on across reloads. It holds one Tally per upstream
// the route references now: an upstream a snapshot drops loses its Tally, so
// its series disappear, and the memory stays bounded by the configuration
// however many containers come and go.

/** Index = codeClass(status): 1xx..5xx, then `none` (the request ended with no response). */
export const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'none'] as const
export const CODE_NONE = 5

/** Upper bounds (seconds) of the request duration histogram; one more bucket holds +Inf. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const N_BOUNDS = DURATION_BUCKETS.length
const BOUNDS = Float64Array.from(DURATION_BUCKETS)

export function codeClass(status: number): number {
  return status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : CODE_NONE
}

/** Requests of one (route, upstream) pair: by code class, and their durations. */
export class Tally {
  readonly key: string
  readonly codes = new Float64Array(CODE_CLASSES.length)
  /** Non-cumulative counts: buckets[i] holds durations in (BOUNDS[i-1], BOUNDS[i]]; the last one, the rest. */
  readonly buckets = new Float64Array(N_BOUNDS + 1)
  sum = 0

  constructor(key: string) {
    this.key = key
  }

  observe(seconds: number): void {
    let i = 0
    while (i < N_BOUNDS && seconds > (BOUNDS[i] as number)) i++
    this.buckets[i] = (this.buckets[i] as number) + 1
    this.sum += seconds
  }
}

export class RouteMeter {
  /** Read when a snapshot is applied, never per request. */
  readonly #byKey = new Map<string, Tally>()
  /** Requests that reached no upstream (404 from no route is the listener's; this is 503 with nothing to pick, and the like). */
  readonly none = new Tally('')

  /** The tallies for `keys` (index-aligned), keeping existing ones and dropping those of upstreams no longer listed. */
  tallies(keys: readonly string[]): Tally[] {
    const out = keys.map((k) => {
      let t = this.#byKey.get(k)
      if (t === undefined) {
        t = new Tally(k)
        this.#byKey.set(k, t)
      }
      return t
    })
    const keep = new Set(keys)
    for (const k of this.#byKey.keys()) if (!keep.has(k)) this.#byKey.delete(k)
    return out
  }
}

/** What traffic() reports: plain data, sent as it is from a worker to the main process. */
export interface RouteTraffic {
  /** RoutePlan.id: `address#name`. */
  id: string
  server: string
  route: string
  /** One entry per upstream and fallback the route references now, plus key '' for requests that reached none. */
  upstreams: UpstreamTraffic[]
}

export interface UpstreamTraffic {
  key: string
  /** By CODE_CLASSES index. */
  codes: number[]
  /** Non-cumulative, DURATION_BUCKETS.length + 1 entries. */
  buckets: number[]
  sum: number
}

export interface ListenerTraffic {
  key: string
  /** The server address as configured (the label the routes carry). */
  server: string
  /** Requests no route took (404) and heads refused before routing (400, 408, 414, 431, 501, 505), by code class. */
  codes: number[]
}

export interface Traffic {
  routes: RouteTraffic[]
  listeners: ListenerTraffic[]
}
