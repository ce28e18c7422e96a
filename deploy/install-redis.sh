#!/usr/bin/env bash
# Redis's server for the third-party server tests on the local backend (tests/plugin/integration/
# test_third_party.py): Debian's redis-server (7.0, the series of the docker sandbox's redis:7),
# installed when missing and this machine can (root, apt-get). Otherwise it says so and those
# tests skip, saying why (AEGIS_REQUIRE_REDIS=1, as in CI, makes them fail instead).
# The package's service is not started: a policy-rc.d (removed after) forbids it, so nothing
# listens on Redis's default port behind the tests' backs.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-redis: no redis-server and no root apt-get here; the Redis tests will skip" \
       "(install Redis's server: apt-get install redis-server, brew install redis)" >&2
  exit 0
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
echo "install-redis: apt-get install redis-server (its service not started)" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null
