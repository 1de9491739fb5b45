#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`, and that Compose and debootstrap are there.
# Idempotent: on a machine whose engine already runs it only checks. Otherwise it installs
# Debian's docker.io, docker-compose (v1.29) and debootstrap, starts dockerd in the background
# (log: ${DOCKERD_LOG:-/var/log/dockerd.log}) and waits until it answers.
set -euo pipefail

log() { echo "docker-engine: $*"; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  log "engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

logfile="${DOCKERD_LOG:-/var/log/dockerd.log}"
log "starting dockerd (log: $logfile)"
# setsid: the engine outlives this script and the CI step that called it.
setsid dockerd >>"$logfile" 2>&1 </dev/null &

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "engine up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 120 s; last lines of $logfile:"
tail -n 30 "$logfile" >&2 || true
exit 1
