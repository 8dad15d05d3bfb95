# shellcheck shell=bash
# Source me (`source .ci/pg.sh`): starts a throwaway PostgreSQL for the tests and exports
#   LOYALTY_PG_URL=postgresql://postgres@127.0.0.1:PORT/loyalty
# The server lives in a temp dir on a free loopback port and is stopped (and the dir removed) when
# the sourcing shell exits, whatever happened. PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` user (runuser); as anyone else it runs as that user.
# Safe under `set -euo pipefail`.

_pg_bin="${LOYALTY_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$_pg_bin/initdb" ]; then
  # A fresh machine may lack the server: install it (Debian's `postgresql` brings the binaries).
  if [ ! -d /usr/lib/postgresql ] || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    echo "pg.sh: installing the PostgreSQL server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  # Prefer 15; otherwise the newest version on the machine.
  if [ ! -x "$_pg_bin/initdb" ]; then
    _pg_bin="$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -n 1)"
  fi
fi
if [ -z "$_pg_bin" ] || [ ! -x "$_pg_bin/initdb" ]; then
  echo "pg.sh: no PostgreSQL server binaries under /usr/lib/postgresql" >&2
  return 1 2>/dev/null || exit 1
fi

if [ "$(id -u)" = 0 ]; then
  _pg_as=(runuser -u postgres --)
else
  _pg_as=()
fi

_pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/loyalty-pg.XXXXXX")"
if [ "$(id -u)" = 0 ]; then chown postgres: "$_pg_dir"; fi
_pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# Run a server binary as the server's user, from the temp dir (that user may not read the cwd).
_pg_run() { (cd "$_pg_dir" && "${_pg_as[@]}" "$@"); }

_pg_stop() {
  if [ -n "${_pg_dir:-}" ] && [ -d "$_pg_dir" ]; then
    _pg_run "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$_pg_dir"
  fi
}
trap _pg_stop EXIT

_pg_run "$_pg_bin/initdb" -D "$_pg_dir/data" -U postgres --auth=trust -E UTF8 --no-locale -N >"$_pg_dir/initdb.log" 2>&1 \
  || { cat "$_pg_dir/initdb.log" >&2; return 1 2>/dev/null || exit 1; }
_pg_run "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -l "$_pg_dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $_pg_port -k $_pg_dir -c max_connections=200" start >/dev/null \
  || { cat "$_pg_dir/server.log" >&2; return 1 2>/dev/null || exit 1; }
_pg_run "$_pg_bin/createdb" -h 127.0.0.1 -p "$_pg_port" -U postgres loyalty

export LOYALTY_PG_URL="postgresql://postgres@127.0.0.1:$_pg_port/loyalty"
echo "pg.sh: PostgreSQL $("$_pg_bin/postgres" --version | awk '{print $3}') at $LOYALTY_PG_URL (data in $_pg_dir)" >&2
