#!/usr/bin/env bash
# Backs up the broker's state: the PostgreSQL database (pg_dump custom format) and the broker's key
# material (the certs directory: broker-ca-key.pem, broker-ca.pem; plus the nginx TLS files and
# .env when present). Restore with deploy/restore.sh.
#
#   deploy/backup.sh [--database-url URL] [--certs-dir DIR] [--tls-dir DIR] [--env-file FILE]
#                    [--out DIR] [--keep N]
#
# Without --database-url the dump is taken inside the compose stack
# (`docker compose exec -T postgres pg_dump`); with it, the host's pg_dump connects to URL.
# Writes DIR/cullis-<UTC timestamp>/{db.dump,keys.tar.gz,SHA256SUMS} (mode 700 / 600: the keys
# and .env are secrets; store backups encrypted) and keeps the newest N backups (default 30).
# Defaults: --certs-dir certs, --tls-dir nginx-compat/certs, --env-file .env, --out backups
# (relative to the repository root).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
prog="backup.sh"
die() { echo "$prog: $*" >&2; exit 1; }

database_url="" certs="$repo/certs" tls="$repo/nginx-compat/certs" env_file="$repo/.env"
out="$repo/backups" keep=30
while [ $# -gt 0 ]; do
  case "$1" in
    --database-url) database_url="$2"; shift 2 ;;
    --certs-dir) certs="$2"; shift 2 ;;
    --tls-dir) tls="$2"; shift 2 ;;
    --env-file) env_file="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -f "$certs/broker-ca-key.pem" ] || die "no broker key in '$certs' (broker-ca-key.pem): pass --certs-dir"
[[ "$keep" =~ ^[0-9]+$ ]] && [ "$keep" -ge 1 ] || die "--keep must be a positive number"

umask 077
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
target="$out/cullis-$stamp"
mkdir -p "$target"
# A failed run leaves no half-written backup behind for rotation to count.
trap 'rm -rf "$target"' EXIT

# The database. Custom format: compressed, restorable table by table, and pg_restore can
# recreate it in an empty database with --no-owner.
if [ -n "$database_url" ]; then
  command -v pg_dump >/dev/null || die "pg_dump is required (apt-get install -y postgresql-client)"
  pg_dump --format=custom --no-owner --dbname="$database_url" --file="$target/db.dump" \
    || die "pg_dump failed for the given --database-url"
else
  compose=(${CULLIS_COMPOSE_CMD:-docker compose})
  "${compose[@]}" -f "$repo/docker-compose.yml" exec -T postgres \
    pg_dump --format=custom --no-owner -U cullis cullis > "$target/db.dump" \
    || die "pg_dump in the compose stack failed (is it running? or pass --database-url)"
fi
[ -s "$target/db.dump" ] || die "the database dump is empty"

# Key material: the broker's signing key and CA, and what else a rebuilt host needs.
staging="$(mktemp -d)"
mkdir -p "$staging/certs" "$staging/tls"
cp -a "$certs/." "$staging/certs/"
if [ -d "$tls" ]; then cp -a "$tls/." "$staging/tls/"; fi
if [ -f "$env_file" ]; then cp -a "$env_file" "$staging/env"; fi
tar -C "$staging" -czf "$target/keys.tar.gz" .
rm -rf "$staging"

(cd "$target" && sha256sum db.dump keys.tar.gz > SHA256SUMS)
chmod 600 "$target"/*
trap - EXIT
echo "backup written to $target ($(du -sh "$target" | cut -f1))"

# Rotation: keep the newest $keep backups.
ls -1d "$out"/cullis-* 2>/dev/null | sort | head -n "-$keep" | while read -r old; do
  rm -rf "$old" && echo "removed old backup $old"
done
