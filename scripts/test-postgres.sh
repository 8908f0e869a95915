#!/usr/bin/env bash
# Prints the URL of a PostgreSQL database for the test suite.
# TEST_DATABASE_URL wins when set; otherwise the machine's local cluster is
# started (and installed on Debian when missing) and a test role and database
# are made. A missing PostgreSQL is an error, never a reason to skip.
set -euo pipefail

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "$TEST_DATABASE_URL"
  exit 0
fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    echo "no PostgreSQL: set TEST_DATABASE_URL or install PostgreSQL" >&2
    exit 1
  fi
fi

read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${version:-}" ]; then
  echo "no PostgreSQL cluster on this machine: set TEST_DATABASE_URL" >&2
  exit 1
fi
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$cluster" start >&2
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi
}
as_postgres "psql -q -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='oms_test'\" | grep -q 1 || psql -q -p $port -c \"CREATE ROLE oms_test LOGIN CREATEDB PASSWORD 'oms_test'\"" >&2
as_postgres "psql -q -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='oms_test'\" | grep -q 1 || createdb -p $port -O oms_test oms_test" >&2

echo "postgresql://oms_test:oms_test@127.0.0.1:$port/oms_test"
