#!/usr/bin/env bash
# Install the Debian packages that promote's tests, demo and benchmarks need, when missing.
# Usage: scripts/install-system-deps.sh [package ...]   (default: all of them)
set -euo pipefail
all=(docker-registry apache2-utils skopeo docker.io debootstrap git)
want=("${@:-${all[@]}}")
missing=()
for p in "${want[@]}"; do
  # A machine that already has a Docker engine (GitHub's runners: docker-ce) keeps it;
  # Debian's docker.io would conflict with it.
  if [ "$p" = docker.io ] && command -v dockerd >/dev/null 2>&1; then continue; fi
  # The debootstrap base image is not built when the real base image is given.
  if [ "$p" = debootstrap ] && [ -n "${PROMOTE_TEST_BASE_IMAGE:-}" ]; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian registry package starts a system service on loopback :5000; the tests run their own.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
