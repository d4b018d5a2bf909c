// A second host for tests that need one: a network namespace the test makes
// (iproute2), joined to this one by a veth pair on a /30 of 10.213.x.0/24.
// A process started in it (exec) sees only its own loopback and the link:
// this host is `hostIp`, it is `ip`. Used where two balancer instances must
// not share listening ports (each on its own "host", as in a Swarm).

import { execFileSync } from 'node:child_process'
import { randomInt } from 'node:crypto'

export interface TestHost {
  /** The namespace's name (for `ip netns exec`). */
  readonly name: string
  /** Its address on the link. */
  readonly ip: string
  /** This host's address on the link (where the namespace reaches servers started here). */
  readonly hostIp: string
  /** The command prefix that runs a program in the namespace. */
  readonly prefix: string[]
  close(): void
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Makes a namespace with its link; throws when iproute2 or the privileges are missing. */
export function makeHost(): TestHost {
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = randomInt(1, 250)
    const tag = `${process.pid % 100000}${id}`.slice(-8)
    const name = `balancer-t${tag}`
    const outer = `bth${tag}`
    const inner = `btn${tag}`
    const hostIp = `10.213.${id}.1`
    const nsIp = `10.213.${id}.2`
    try {
      ip('netns', 'add', name)
    } catch {
      continue
    }
    try {
      ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner)
      ip('link', 'set', inner, 'netns', name)
      ip('addr', 'add', `${hostIp}/30`, 'dev', outer)
      ip('link', 'set', outer, 'up')
      ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', inner)
      ip('netns', 'exec', name, 'ip', 'link', 'set', inner, 'up')
      ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up')
    } catch (err) {
      try {
        ip('netns', 'del', name)
        ip('link', 'del', outer)
      } catch {
        // partly made: whatever is left goes with the namespace
      }
      if (attempt === 4) throw err
      continue
    }
    return {
      name,
      ip: nsIp,
      hostIp,
      prefix: ['ip', 'netns', 'exec', name],
      close() {
        try {
          ip('netns', 'del', name)
        } catch {
          // already gone
        }
        try {
          ip('link', 'del', outer)
        } catch {
          // removed with the namespace
        }
      },
    }
  }
  throw new Error('could not make a network namespace for a second test host')
}
