#!/usr/bin/env bash
# The tests run against a real PostgreSQL on 127.0.0.1:5432; start the local cluster if it is down.
set -euo pipefail
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  exit 0
fi
echo "PostgreSQL is not answering on 127.0.0.1:5432; starting the local cluster" >&2
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
else
  echo "no local PostgreSQL cluster found: install postgresql or set PROVISIOND_TEST_PG" >&2
  exit 1
fi
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
  sleep 1
done
echo "PostgreSQL did not come up within 30 s" >&2
exit 1
