// `npm test`: everything CI checks, in order. Runs on the Node that npm puts
// first on PATH (the project's Node 26 from node_modules/.bin).
import { spawnSync } from 'node:child_process'

function run(cmd, args) {
  process.stdout.write(`\n$ ${cmd} ${args.join(' ')}\n`)
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) {
    process.stderr.write(`test: "${cmd} ${args.join(' ')}" failed (exit ${r.status ?? r.signal})\n`)
    process.exit(r.status ?? 1)
  }
}

const major = Number(process.versions.node.split('.')[0])
if (major < 26) {
  process.stderr.write(`test: Node ${process.version} is running; run through npm (npm test) so the project's Node 26 is used\n`)
  process.exit(1)
}
const extra = process.argv.slice(2)
// One full run per machine at a time: the Docker and Swarm tests of two runs
// would discover each other's labelled containers and services, and two runs
// of every real server at once overload a small machine into timeouts.
const LOCK = process.env.BALANCER_TEST_LOCK ?? '/tmp/balancer-full-test.lock'
if (extra.length === 0 && process.env.BALANCER_TEST_LOCKED !== '1') {
  process.stdout.write(`\n$ flock ${LOCK} (one full run per machine)\n`)
  const r = spawnSync('flock', [LOCK, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, BALANCER_TEST_LOCKED: '1' },
  })
  process.exit(r.status ?? 1)
}
// Real components, installed and started when missing: etcd, ZooKeeper, curl
// (Debian packages) and a Docker Engine with a single-node Swarm.
run('bash', ['scripts/system-deps.sh'])
run('bash', ['scripts/docker-up.sh'])
run('tsc', ['--noEmit', '-p', '.'])
// The linter (type-aware: floating and misused promises) and the formatter, on
// full runs (biome.json; `npm run format` rewrites, `npm run lint` checks).
if (extra.length === 0) run('biome', ['check', '.'])
if (extra.length > 0) {
  run('vitest', ['run', ...extra])
} else {
  // Everything but Docker and the registries, two files at a time; then the
  // registry tests one file at a time (they stop and restart their etcd and
  // ZooKeeper under load, so a port a restarting server left free for a
  // moment is never taken by another file's new server); then the Docker and
  // Swarm tests one file at a time: they share one daemon and one Swarm. The
  // deployment tests (test/deploy) build the image once for all of them.
  run('vitest', ['run', '--exclude', 'test/sources/**', '--exclude', 'test/deploy/**', '--exclude', 'test/registry/**'])
  run('vitest', ['run', 'test/registry', '--no-file-parallelism'])
  run('vitest', ['run', 'test/sources', 'test/deploy', '--no-file-parallelism'])
}
