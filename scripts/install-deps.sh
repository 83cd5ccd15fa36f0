#!/usr/bin/env bash
# Installs everything uvxmpp builds, tests and benches with, from Debian's
# packages. Needs root (or sudo). Safe to run again.
set -euo pipefail
PKGS=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libuv1-dev libxml2-dev libmbedtls-dev libwslay-dev node-llhttp
  libstrophe-dev openssl python3 procps curl
  prosody ejabberd
)
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
