#!/usr/bin/env bash
# Installs what Herald needs to build, test and run on Debian/Ubuntu, skipping what is
# already there. Safe to run again. Swift itself is not an apt package on Debian 12:
# install the Swift 6 toolchain from swift.org first (see README.md).
set -euo pipefail

packages=(libhiredis-dev libssl-dev openssl redis-server redis-sentinel redis-tools haproxy prometheus)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system-wide redis-server, haproxy and prometheus services
  # where systemd runs; Herald and its tests start their own (prometheus: the metrics
  # test runs its own scraper with a temporary configuration and storage).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now redis-server redis-sentinel haproxy prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
  # Without systemd, the packages' init scripts may have started them.
  for service in redis-sentinel prometheus prometheus-node-exporter; do
    if [ -x "/etc/init.d/$service" ]; then $sudo "/etc/init.d/$service" stop >/dev/null 2>&1 || true; fi
  done
fi

if ! command -v swift >/dev/null 2>&1; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    if [ -x "$candidate/swift" ]; then export PATH="$candidate:$PATH"; break; fi
  done
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift 6 toolchain is missing. Install it from https://www.swift.org/install/linux/ and put it on PATH." >&2
  exit 1
fi
