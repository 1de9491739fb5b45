#!/usr/bin/env bash
# Makes sure the Dockerfile's base image, node:20-bookworm-slim, exists in the local engine.
#
# Where a registry is reachable `docker build` pulls it and this script is not needed; it does
# nothing when the tag is already there. Where none is (this project's CI machine), it builds a
# local stand-in for the tag from Debian bookworm (debootstrap --variant=minbase) and this
# machine's own Node.js + npm, with the machine's CA bundle so that `npm ci` inside `docker
# build` reaches the npm registry the machine reaches. STRATA_DOCKER_PULL=1 tries `docker pull`
# first. The stand-in carries the label strata.standin=1 and, like the real image, a user `node`
# (uid 1000).
set -euo pipefail

TAG="${STRATA_BASE_TAG:-node:20-bookworm-slim}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "docker-base: $*"; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG is present ($(docker image inspect -f '{{index .Config.Labels "strata.standin"}}' "$TAG" | sed 's/^1$/local stand-in/;s/^$/pulled/'))"
  exit 0
fi
if [ "${STRATA_DOCKER_PULL:-0}" = 1 ] && timeout 120 docker pull -q "$TAG"; then
  log "pulled $TAG"
  exit 0
fi

node_bin="$(command -v node)"
npm_dir="$(dirname "$(readlink -f "$(command -v npm)")")/.."
npm_dir="$(readlink -f "$npm_dir")"
ca="/etc/ssl/certs/ca-certificates.crt"
major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$major" = 20 ] || { log "this machine's node is v$major, the tag says 20; refusing to build a misleading stand-in"; exit 1; }
[ -f "$npm_dir/bin/npm-cli.js" ] || { log "npm not found next to $(command -v npm)"; exit 1; }
[ -f "$ca" ] || { log "no CA bundle at $ca"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is missing (scripts/docker-engine.sh installs it)"; exit 1; }

start=$(date +%s)
root="$(mktemp -d /tmp/strata-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
log "building a stand-in for $TAG in $root (debootstrap bookworm from $MIRROR)"
# A mirror hiccup should not fail CI: up to three tries, each into an empty root.
for try in 1 2 3; do
  if debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1; then break; fi
  tail -n 30 "$root.log" >&2
  if [ "$try" = 3 ]; then rm -f "$root.log"; exit 1; fi
  log "debootstrap failed (try $try of 3); retrying"
  rm -rf "$root" && mkdir -p "$root"
  sleep 5
done
rm -f "$root.log"

# The machine's Node.js and npm, where the official image has them.
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
mkdir -p "$root/etc/ssl/certs"
install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
# The official image's user.
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
# Slim like the real one: no apt lists, docs or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
chroot "$root" node -e 'process.exit(0)' || { log "node does not run inside the stand-in (missing shared libraries?)"; exit 1; }

version="$("$node_bin" -p process.versions.node)"
tar -C "$root" -c . | docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$version" \
  --change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" \
  --change "LABEL strata.standin=1" \
  --change 'CMD ["node"]' \
  - "$TAG" >/dev/null
log "built $TAG (node $version, $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')) in $(( $(date +%s) - start )) s"
