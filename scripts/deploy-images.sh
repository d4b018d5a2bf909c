#!/usr/bin/env bash
# Builds the images the deployment tests (test/deploy) run, once per content:
#
#   1. the stand-in base image node:26-slim (scripts/base-image.sh), when no
#      real one is present;
#   2. the project's image from the real Dockerfile, tagged
#      balancer-test/balancer:<hash of what the build reads>;
#   3. the demo app the stack and compose files name
#      (nginxdemos/hello:plain-text): busybox httpd FROM scratch answering
#      "Server name: <hostname>", draining for a second on its stop signal
#      as nginx does on SIGQUIT.
#
#   scripts/deploy-images.sh      # prints "BALANCER_IMAGE=..." and "DEMO_IMAGE=..."
#
# An image whose tag already exists is not built again, so every test file
# can call this and only the first build of a run (or of a change) costs time.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker )
DEMO_IMAGE=nginxdemos/hello:plain-text
LABEL=org.balancer.standin-hash
say() { printf 'deploy-images: %s\n' "$*" >&2; }

exec 8>"${TMPDIR:-/tmp}/balancer-deploy-images.lock"
flock -w 900 8 || { say "another build holds the lock for 900 s"; exit 1; }

bash scripts/base-image.sh >/dev/null

# Everything the Dockerfile reads, and the base it builds on.
base_id=$("$DOCKER" image inspect -f '{{.Id}}' node:26-slim)
hash=$(
  {
    echo "$base_id"
    find Dockerfile .dockerignore package.json package-lock.json openapi.yaml bin src -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)
BALANCER_IMAGE="balancer-test/balancer:$hash"
if ! "$DOCKER" image inspect "$BALANCER_IMAGE" >/dev/null 2>&1; then
  say "building $BALANCER_IMAGE from the Dockerfile"
  t0=$(date +%s)
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$BALANCER_IMAGE" . >/dev/null
  say "built in $(( $(date +%s) - t0 )) s"
fi

# By content only: the script may be run by any path.
demo_hash=$(cat "$0" /bin/busybox | sha256sum | cut -c1-16)
if [ "$("$DOCKER" image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$DEMO_IMAGE" 2>/dev/null || true)" != "$demo_hash" ]; then
  say "building the demo app $DEMO_IMAGE (busybox httpd)"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/balancer-demo.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  cp /bin/busybox "$dir/busybox"
  cat >"$dir/hello.sh" <<'EOF'
#!/bin/sh
mkdir -p /www
printf 'Server name: %s\n' "$(hostname)" >/www/index.html
httpd -f -p 80 -h /www &
pid=$!
trap 'sleep 1; kill $pid; exit 0' TERM INT QUIT
wait $pid
EOF
  chmod 755 "$dir/hello.sh"
  cat >"$dir/Dockerfile" <<EOF
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY hello.sh /hello.sh
EXPOSE 80
STOPSIGNAL SIGQUIT
LABEL $LABEL=$demo_hash
CMD ["/hello.sh"]
EOF
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$DEMO_IMAGE" "$dir" >/dev/null
fi

echo "BALANCER_IMAGE=$BALANCER_IMAGE"
echo "DEMO_IMAGE=$DEMO_IMAGE"
