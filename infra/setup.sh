#!/usr/bin/env bash
# Installs the Debian packages the test tiers need. Idempotent and quiet:
# packages already present are not fetched again. Run as root (CI does).
set -euo pipefail

PACKAGES=(
  redis-server            # Redis store tests
  openssl                 # self-signed certificates for the messenger TLS test
  qemu-system-x86         # qemu backend of NodeAllocator
  linux-image-cloud-amd64 # kernel for native VM images
  busybox-static          # init helpers inside the native image
  memcached               # peer baseline for the memcached example
  libmemcached-tools      # memcaslap load generator
  wrk                     # HTTP load generator for benches
  chromium                # dashboard tests via playwright-core
  iproute2                # network-namespace fault tests (test/kit/netns.ts)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "infra/setup.sh: all ${#PACKAGES[@]} system packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "infra/setup.sh: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "infra/setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "infra/setup.sh: apt-get failed (output above)" >&2
  exit 1
fi
echo "infra/setup.sh: done"
