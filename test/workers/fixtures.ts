// One upstream's figures as a worker reports them, every counter at zero
// unless the test says otherwise (the worker stats tests build many).

import type { UpstreamStats } from '../../src/engine/types.ts'

export function upstreamStats(key: string, over: Partial<UpstreamStats> = {}): UpstreamStats {
  return {
    key,
    host: '127.0.0.1',
    port: 1,
    state: 'healthy',
    ejectedUntil: null,
    checks: [],
    active: 0,
    idle: 0,
    pending: 0,
    requests: 0,
    failures: 0,
    consecutiveFailures: 0,
    retries: 0,
    ejections: 0,
    ...over,
  }
}
