#!/usr/bin/env bash
# The Debian packages the tests use besides Node: installed here when missing (as root, after one
# `apt-get update`), else the run stops naming them, so that no test has to skip.
#   testssl.sh:   test/tls/testssl.test.ts compares `certgate scan` with testssl's findings.
#   redis-server: the fleet tests start their own Redis on a free port (the Redis store).
#   chromium:     the dashboard test drives the system browser through playwright-core.
#   prometheus:   provides promtool, which checks and unit-tests deploy/prometheus/ rules.
set -euo pipefail
packages=(testssl.sh redis-server chromium prometheus)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing Debian package(s): ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
