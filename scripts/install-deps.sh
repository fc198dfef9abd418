#!/usr/bin/env bash
# System packages needed to build the C-based peer codecs of melloc-bench
# (fpzip-sys and zfp-sys run cmake and bindgen; blosc2-src builds C-Blosc2 with cmake).
# Idempotent: installs only what is missing. Debian/Ubuntu (apt-get). CI calls this script.
set -euo pipefail

PKGS=(cmake clang libclang-dev pkg-config make g++)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all of ${PKGS[*]} already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
