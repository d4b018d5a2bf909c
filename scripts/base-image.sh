#!/usr/bin/env bash
# Assembles a local stand-in for the Dockerfile's base image (node:26-slim)
# FROM scratch, for machines that cannot pull it: the project's own Node
# (node_modules/node/bin/node, the Node 26 `npm ci` installs), the shared
# libraries it needs, the host's npm, CA bundle and busybox-static, and a
# `node` user (uid 1000) as the official image has. Tagged node:26-slim so the
# Dockerfile builds as written.
#
#   scripts/base-image.sh          # prints the tag; fast when already built
#
# Cached by content: the image carries a label with a hash of its inputs and
# is rebuilt only when they change. An image of that name WITHOUT the label
# is a real node:26-slim (pulled by the user): it is kept and used as is.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=node:26-slim
LABEL=org.balancer.standin-hash
DOCKER=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker )
NODE_BIN=node_modules/node/bin/node
NPM_DIR=/usr/lib/node_modules/npm
say() { printf 'base-image: %s\n' "$*" >&2; }

[ -x "$NODE_BIN" ] || { say "$NODE_BIN is missing: run npm ci first"; exit 1; }
[ -d "$NPM_DIR" ] || { say "no npm at $NPM_DIR (Debian's or the host's npm)"; exit 1; }
[ -x /bin/busybox ] || { say "/bin/busybox is missing (Debian's busybox-static; scripts/docker-up.sh installs it)"; exit 1; }

# Node's libraries (from ldd) and the name-service ones it loads at run time.
libs() {
  ldd "$NODE_BIN" | grep -o '/[^ ]*\.so[^ ]*' | sort -u
  for l in libresolv.so.2 libnss_files.so.2 libnss_dns.so.2; do
    for d in /lib/x86_64-linux-gnu /lib/aarch64-linux-gnu /lib64 /lib; do
      if [ -e "$d/$l" ]; then readlink -f "$d/$l" | sed "s|.*/|$d/|"; break; fi
    done
  done
}
mapfile -t LIBS < <(libs | sort -u)

hash=$(
  {
    sha256sum "$0" "$NODE_BIN" /bin/busybox /etc/ssl/certs/ca-certificates.crt
    for l in "${LIBS[@]}"; do sha256sum "$(readlink -f "$l")"; done
    sed -n 's/.*"version": *"\([^"]*\)".*/npm \1/p' "$NPM_DIR/package.json" | head -n 1
  } | sha256sum | cut -c1-16
)

exec 9>"${TMPDIR:-/tmp}/balancer-base-image.lock"
flock -w 600 9 || { say "another build holds the lock for 600 s"; exit 1; }

have=$("$DOCKER" image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$TAG" 2>/dev/null || echo none)
if [ "$have" = "$hash" ]; then echo "$TAG"; exit 0; fi
if [ "$have" = "" ] || [ "$have" = "<no value>" ]; then
  say "$TAG exists and is not a stand-in: using it as is"
  echo "$TAG"
  exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/balancer-base.XXXXXX")
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/root/usr/local/bin" "$dir/root/usr/local/lib/node_modules" "$dir/root/bin" \
  "$dir/root/etc/ssl/certs" "$dir/root/tmp" "$dir/root/home/node" "$dir/root/root"
cp "$NODE_BIN" "$dir/root/usr/local/bin/node"
cp -a "$NPM_DIR" "$dir/root/usr/local/lib/node_modules/npm"
for tool in npm npx; do
  printf '#!/bin/sh\nexec /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/%s-cli.js "$@"\n' "$tool" >"$dir/root/usr/local/bin/$tool"
  chmod 755 "$dir/root/usr/local/bin/$tool"
done
cp /bin/busybox "$dir/root/bin/busybox"
cp /etc/ssl/certs/ca-certificates.crt "$dir/root/etc/ssl/certs/"
for l in "${LIBS[@]}"; do
  mkdir -p "$dir/root$(dirname "$l")"
  cp -L "$l" "$dir/root$l"
done
# The official image's users: root and node (1000:1000).
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$dir/root/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$dir/root/etc/group"
printf 'hosts: files dns\n' >"$dir/root/etc/nsswitch.conf"
cat >"$dir/Dockerfile" <<EOF
FROM scratch
COPY root/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN chmod 1777 /tmp && chown 1000:1000 /home/node
ENV PATH=/usr/local/bin:/usr/bin:/bin \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL $LABEL=$hash
CMD ["node"]
EOF
say "building the stand-in $TAG ($hash)"
DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$TAG" "$dir" >/dev/null
echo "$TAG"
