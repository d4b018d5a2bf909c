// Flap damping for registry instances, after BGP route flap damping (RFC
// 2439): every disappearance of an instance adds 1 to its penalty, which
// halves every halfLifeMs. An instance that comes back while its penalty is
// at suppressAt or more is held out until the penalty has decayed below
// reuseBelow. Disappearing is never delayed (traffic must leave a removed
// instance at once); only coming back is. Keyed by service and address, not
// by instance id: a client that registers again under a fresh id (Curator
// does) is still the same flapping address.

export interface DampingOptions {
  halfLifeMs: number
  suppressAt: number
  reuseBelow: number
}

export const DEFAULT_DAMPING: DampingOptions = { halfLifeMs: 15_000, suppressAt: 2.5, reuseBelow: 1 }

interface Penalty {
  value: number
  at: number
  held: boolean
}

export class Damper {
  readonly #o: DampingOptions
  readonly #p = new Map<string, Penalty>()

  constructor(o: DampingOptions = DEFAULT_DAMPING) {
    this.#o = o
  }

  /** The instance disappeared. */
  flap(key: string, now: number): void {
    const p = this.#p.get(key)
    const value = (p === undefined ? 0 : this.#decayed(p, now)) + 1
    this.#p.set(key, { value, at: now, held: p?.held ?? false })
  }

  /** Whether a present instance is held out now. Decides suppression when it reappears. */
  held(key: string, now: number): boolean {
    const p = this.#p.get(key)
    if (p === undefined) return false
    const v = this.#decayed(p, now)
    if (p.held) {
      if (v < this.#o.reuseBelow) p.held = false
    } else if (v >= this.#o.suppressAt) p.held = true
    if (!p.held && v < 0.01) this.#p.delete(key)
    return p.held
  }

  /** When a held instance may come back (epoch ms), or null when it is not held. */
  releaseAt(key: string, now: number): number | null {
    const p = this.#p.get(key)
    if (p === undefined || !p.held) return null
    const v = this.#decayed(p, now)
    if (v < this.#o.reuseBelow) return now
    return now + Math.ceil(this.#o.halfLifeMs * Math.log2(v / this.#o.reuseBelow)) + 1
  }

  #decayed(p: Penalty, now: number): number {
    return p.value * 2 ** (-(now - p.at) / this.#o.halfLifeMs)
  }
}
