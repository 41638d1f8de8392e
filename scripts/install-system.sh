#!/usr/bin/env bash
# Installs the Debian packages threefs needs (FUSE, PostgreSQL for the KV tests, build tools,
# fio/stress-ng/fs_mark for the FUSE stress tests and benchmark).
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail

PACKAGES=(fuse3 libfuse3-dev pkg-config gcc python3-dev postgresql iproute2 make fio stress-ng fsmark)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian postgresql package may start a cluster on 5432; threefs never uses it (tests start
# their own server on a free loopback port), so it is left as the package set it up.
echo "system packages: done"
