// The Node flags a worker is started with (src/workers/group.ts).

import { describe, expect, it } from 'vitest'
import { workerExecArgv } from '../../src/workers/group.ts'

describe('workerExecArgv', () => {
  it("caps V8's young generation at 1 MiB per semi-space and keeps the main process's other flags, less a debugger port", () => {
    expect(workerExecArgv(['--inspect=9229', '--enable-source-maps'], '')).toEqual(['--enable-source-maps', '--max-semi-space-size=1', '--expose-gc'])
  })

  it("keeps an operator's own size, given as a flag or in NODE_OPTIONS (which the worker inherits)", () => {
    expect(workerExecArgv(['--max-semi-space-size=16'], '')).toEqual(['--max-semi-space-size=16', '--expose-gc'])
    expect(workerExecArgv(['--max_semi_space_size', '8'], '')).toEqual(['--max_semi_space_size', '8', '--expose-gc'])
    expect(workerExecArgv([], '--no-warnings --max-semi-space-size=4')).toEqual(['--expose-gc'])
  })

  it('exposes gc() for the collection a worker runs once it has started (workers/settle.ts), once', () => {
    expect(workerExecArgv(['--expose-gc'], '')).toEqual(['--expose-gc', '--max-semi-space-size=1'])
    expect(workerExecArgv([], '--expose_gc')).toEqual(['--max-semi-space-size=1'])
  })
})
