#!/bin/sh
# First start of the PostgreSQL volume only (docker-entrypoint-initdb.d): Temporal's two databases, owned by
# the superuser the admin tools and the server use, and Spotcheck's records under a role of its own, which
# the workers' migrations (activities/db.py) fill.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v spotcheck_password="$SPOTCHECK_DB_PASSWORD" <<'SQL'
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
CREATE ROLE spotcheck LOGIN PASSWORD :'spotcheck_password';
CREATE DATABASE spotcheck OWNER spotcheck;
SQL
