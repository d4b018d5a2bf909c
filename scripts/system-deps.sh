#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing:
#   etcd-server (etcd), etcd-client (etcdctl), zookeeper (+ a Java runtime), curl,
#   wrk (load for the access log test and TLS keep-alive load), chromium (the
#   dashboard's browser test); for TLS: openssl (test certificates), sslscan
#   (the protocol and cipher scan), pebble (the ACME test CA, with
#   pebble-challtestsrv); for HTTP/2: nghttp2-client (nghttp, h2load);
#   apache2-utils (htpasswd: bcrypt hashes for the BasicAuth tests);
#   openssh-server and openssh-client (sshd, ssh-agent: DOCKER_HOST=ssh://).
# Idempotent and quiet; when everything is present it only runs a few checks.
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

missing=()
need() { # need PACKAGE [PATH-THAT-PROVES-IT]
  local pkg=$1 proof=${2:-}
  # With a proof, the file decides (a package removed with its configuration
  # kept still answers `dpkg -s`); without one, only an installed package counts.
  if [[ -n $proof ]]; then
    [[ -e $proof ]] || missing+=("$pkg")
    return
  fi
  if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == 'install ok installed' ]]; then return; fi
  missing+=("$pkg")
}

need etcd-server /usr/bin/etcd
need etcd-client /usr/bin/etcdctl
need zookeeper /usr/share/java/zookeeper.jar
command -v java >/dev/null 2>&1 || need default-jre-headless
command -v curl >/dev/null 2>&1 || need curl
need wrk /usr/bin/wrk
need chromium /usr/bin/chromium
command -v openssl >/dev/null 2>&1 || need openssl
need sslscan /usr/bin/sslscan
need pebble /usr/bin/pebble
need nghttp2-client /usr/bin/h2load
need apache2-utils /usr/bin/htpasswd
need openssh-server /usr/sbin/sshd
need openssh-client /usr/bin/ssh-agent

if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi

if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
  echo "system-deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
