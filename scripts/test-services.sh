# Sourced by `make test`: starts the services the integration tests use, on loopback only.
# PostgreSQL: Debian's cluster if present (installed with apt-get when missing and we are root),
# a throwaway database `relayflow_test`, and RELAYFLOW_TEST_PG_URL for the tests.
# Chromium: Debian's package (never a browser download) for the review pages' Playwright test.
# bubblewrap: Debian's package, the sandbox that runs generated code (relayflow/sandbox).
# Tests that need a service skip with a reason when it is not available.

_relayflow_pg() {
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
        >/dev/null 2>&1 || return 0
    else
      return 0
    fi
  fi
  local cluster
  cluster=$(pg_lsclusters --no-header 2>/dev/null | head -n1)
  [ -n "$cluster" ] || return 0
  local version name port status
  read -r version name port status _ <<<"$cluster"
  if [ "$status" != "online" ]; then
    pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 || return 0
  fi
  local as_pg="runuser -u postgres --"
  [ "$(id -u)" = "0" ] || as_pg=""
  $as_pg psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='relayflow'" 2>/dev/null | grep -q 1 \
    || $as_pg psql -p "$port" -qc "CREATE ROLE relayflow LOGIN PASSWORD 'relayflow' SUPERUSER" >/dev/null 2>&1
  $as_pg psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname='relayflow_test'" 2>/dev/null | grep -q 1 \
    || $as_pg psql -p "$port" -qc "CREATE DATABASE relayflow_test OWNER relayflow" >/dev/null 2>&1
  export RELAYFLOW_TEST_PG_URL="postgresql+psycopg://relayflow:relayflow@127.0.0.1:${port}/relayflow_test"
}
_relayflow_pg
unset -f _relayflow_pg

_relayflow_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 0
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || return 0
}
_relayflow_chromium
unset -f _relayflow_chromium

_relayflow_bwrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 0
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) \
    >/dev/null 2>&1 || return 0
}
_relayflow_bwrap
unset -f _relayflow_bwrap
