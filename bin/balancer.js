#!/usr/bin/env node
// Entry point for `npx balancer`: Node runs the TypeScript sources directly.
//
// Node's compile cache keeps every module's type-stripped source and compiled
// code on disk (os.tmpdir()/node-compile-cache, or NODE_COMPILE_CACHE). A
// start that finds it loads neither the TypeScript type stripper (a
// WebAssembly module) nor the parse of the sources: measured here, 35 MiB less
// resident in the main process and in each worker. The first start after an
// install fills it; the workers find it through the environment.
import module from 'node:module'

const cache = module.enableCompileCache?.()
if (cache?.directory !== undefined && process.env.NODE_COMPILE_CACHE === undefined) process.env.NODE_COMPILE_CACHE = cache.directory
// `balancer healthcheck` asks a running balancer whether it is ready (the
// image's HEALTHCHECK) and loads nothing else.
if (process.argv[2] === 'healthcheck') {
  const { healthcheck } = await import('../src/cli/healthcheck.ts')
  const { code, line } = await healthcheck(process.argv.slice(3), process.env)
  process.stdout.write(`${line}\n`)
  process.exitCode = code
} else {
  await import('../src/main.ts')
}
