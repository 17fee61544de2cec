# PostgreSQL for the control-plane DB tests (sourced by .ci/run; see .ci/setup.d/README.md).
# Debian's postgresql, a throw-away cluster owned by the postgres user on 127.0.0.1 and a free
# port; exports SUANLI_TEST_POSTGRES_URL and registers its stop command for teardown.
if ! command -v /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_DIR="$(mktemp -d /tmp/suanli-pg.XXXXXX)"
chown postgres:postgres "$PG_DIR"
PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
# fsync off: a test database, not a durability test of PostgreSQL itself
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/log" \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
export SUANLI_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
echo "runuser -u postgres -- '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast stop; rm -rf '$PG_DIR'" >>"$SUANLI_CI_TEARDOWN"
echo "PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)"
