#!/usr/bin/env bash
# Builds the images docker-compose.yml runs: the gateway (from the release
# binary, which must be built first: `./dev images` does both), PostgreSQL
# and Kamailio, all on one Debian 12 base image.
#
# The base is BASE_IMAGE if set; else Docker Hub's debian:bookworm-slim if
# it is here or can be pulled; else `dialgate-debian:bookworm`, made once
# from a Debian root filesystem that debootstrap fetches from the same
# Debian mirror apt uses (about a minute; no container registry needed).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v docker >/dev/null || { echo "build-images: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-images: the Docker engine is not running (docker info failed)" >&2; exit 1; }
[ -x target/release/dialgate ] || { echo "build-images: build the gateway first: cargo build --release -p dialgate (or ./dev images)" >&2; exit 1; }

LOCAL_BASE=dialgate-debian:bookworm
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    base=debian:bookworm-slim
  elif docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    base=$LOCAL_BASE
  elif timeout 30 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    base=debian:bookworm-slim
  else
    echo "build-images: no registry reachable: making $LOCAL_BASE with debootstrap" >&2
    if ! dpkg -s debootstrap >/dev/null 2>&1; then
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
    fi
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$(mktemp -d)
    trap '$sudo rm -rf "$root"' EXIT
    $sudo debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    $sudo tar -C "$root" -c . | docker import - "$LOCAL_BASE" >/dev/null
    base=$LOCAL_BASE
  fi
fi
echo "build-images: base image $base" >&2

# Compose needs the password to read the file, not to build.
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-unused-when-building}"
BASE_IMAGE="$base" docker-compose build -q
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^dialgate-' >&2
