#!/usr/bin/env node
// Entry point for `npx balancer`: Node runs the TypeScript sources directly.
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
