#!/usr/bin/env bash
# Makes sure a real Docker Engine answers and a single-node Swarm is active,
# for the discovery tests (test/sources). Idempotent, quiet, and fast when
# everything is already up. Nothing is pulled from a registry: the tests build
# their images FROM scratch with Debian's busybox-static.
#
#   scripts/docker-up.sh          # install if missing, start dockerd, init Swarm
#
# Exit status non-zero (with the daemon's log tail) when the engine cannot be
# brought up: a missing dependency is a failure, never a skip.
set -euo pipefail

LOG="${BALANCER_DOCKERD_LOG:-${TMPDIR:-/tmp}/balancer-dockerd.log}"
SOCK=/var/run/docker.sock

say() { printf 'docker-up: %s\n' "$*" >&2; }

# Test files run in parallel and each calls this script: one at a time.
exec 9>"${TMPDIR:-/tmp}/balancer-docker-up.lock"
flock -w 300 9 || { say "another docker-up.sh holds the lock for 300 s"; exit 1; }

# The daemon this script starts is Debian's; use Debian's client with it so
# both speak the same API version (a newer client elsewhere on PATH works too,
# but this keeps the pair consistent).
docker_cli() {
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# Validates compose/compose.yaml and swarm-stack.yml in the tests (config only, no daemon needed).
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
# Makes the certificates for the TLS endpoint test.
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# The deployment tests read the default bridge's address with ip(8).
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  say "installing ${need_pkgs[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! docker_cli info >/dev/null 2>&1; then
  say "starting dockerd (log: $LOG)"
  # containerd ships with docker.io; dockerd starts its own when none runs.
  # fd 9 (the lock) is closed for the daemon, or it would hold the lock for life.
  # Its own session: a daemon that outlives this run must not die with the
  # process group of whatever started it (a test runner stopped with its group).
  setsid nohup dockerd --host "unix://$SOCK" >"$LOG" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 120); do
    docker_cli info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker_cli info >/dev/null 2>&1; then
    say "dockerd did not answer within 60 s; last lines of $LOG:"
    tail -n 30 "$LOG" >&2 || true
    exit 1
  fi
fi

# The node preparation docs/deploy.md asks for a Swarm balancer on the host
# network: queued connections of a closing SO_REUSEPORT listener move to
# another listener of the port instead of being reset (Linux 5.14+), so an
# upgrade's old task can stop without losing what the kernel had accepted.
if [ -e /proc/sys/net/ipv4/tcp_migrate_req ] && [ "$(cat /proc/sys/net/ipv4/tcp_migrate_req)" != 1 ]; then
  sysctl -q -w net.ipv4.tcp_migrate_req=1 || say "cannot set net.ipv4.tcp_migrate_req=1 (the Swarm upgrade test needs it)"
fi

state="$(docker_cli info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)"
if [ "$state" != "active" ]; then
  say "initialising a single-node Swarm"
  docker_cli swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
