#!/usr/bin/env bash
# Restores a deploy/backup.sh backup: the database into an EMPTY PostgreSQL database and the key
# material into the certs (and nginx TLS) directory.
#
#   deploy/restore.sh BACKUP_DIR [--database-url URL] [--certs-dir DIR] [--tls-dir DIR]
#                     [--env-file FILE] [--force] [--yes]
#
# Stop the broker first (docker compose stop broker). Without --database-url the restore runs in
# the compose stack's postgres container (database `cullis`, which must be empty: drop and recreate
# it first, see docs/runbook.md). Existing key files are never overwritten unless --force; .env is
# restored only when the target does not exist. --yes skips the confirmation prompt.
# Afterwards: `cullis-broker audit verify` (exit 0 = the restored audit chain is intact).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
prog="restore.sh"
die() { echo "$prog: $*" >&2; exit 1; }

backup="" database_url="" certs="$repo/certs" tls="$repo/nginx-compat/certs" env_file="$repo/.env"
force=0 yes=0
while [ $# -gt 0 ]; do
  case "$1" in
    --database-url) database_url="$2"; shift 2 ;;
    --certs-dir) certs="$2"; shift 2 ;;
    --tls-dir) tls="$2"; shift 2 ;;
    --env-file) env_file="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --yes) yes=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument '$1' (see --help)" ;;
    *) [ -z "$backup" ] || die "one backup directory only"; backup="$1"; shift ;;
  esac
done
[ -n "$backup" ] || die "which backup? deploy/restore.sh BACKUP_DIR (see --help)"
[ -f "$backup/db.dump" ] && [ -f "$backup/keys.tar.gz" ] || die "'$backup' is not a backup made by deploy/backup.sh"
(cd "$backup" && sha256sum --quiet -c SHA256SUMS) || die "checksum mismatch in '$backup': the backup is damaged"

if [ "$yes" = 0 ]; then
  [ -t 0 ] || die "refusing to restore without confirmation: pass --yes"
  read -r -p "Restore $backup into ${database_url:+the database at }${database_url:-the compose database} and $certs? [y/N] " answer
  [ "$answer" = y ] || [ "$answer" = Y ] || die "aborted"
fi

# Keys first: a database without its signing key is useless (every token would be invalid).
umask 077
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
tar -C "$staging" -xzf "$backup/keys.tar.gz"
restore_dir() {
  local from="$1" to="$2"
  [ -d "$from" ] || return 0
  mkdir -p "$to"
  for file in "$from"/*; do
    [ -e "$file" ] || continue
    local dest
    dest="$to/$(basename "$file")"
    if [ -e "$dest" ] && [ "$force" = 0 ] && ! cmp -s "$file" "$dest"; then
      die "$dest exists and differs from the backup: move it away or pass --force"
    fi
    cp -a "$file" "$dest"
  done
}
restore_dir "$staging/certs" "$certs"
restore_dir "$staging/tls" "$tls"
if [ -f "$staging/env" ] && [ ! -e "$env_file" ]; then cp -a "$staging/env" "$env_file"; fi
echo "keys restored into $certs"

# The database, in one transaction: a failed restore leaves the target empty, not half-filled.
if [ -n "$database_url" ]; then
  command -v pg_restore >/dev/null || die "pg_restore is required (apt-get install -y postgresql-client)"
  pg_restore --single-transaction --exit-on-error --no-owner --dbname="$database_url" "$backup/db.dump" \
    || die "pg_restore failed (the target database must exist and be empty)"
else
  compose=(${CULLIS_COMPOSE_CMD:-docker compose})
  "${compose[@]}" -f "$repo/docker-compose.yml" exec -T postgres \
    pg_restore --single-transaction --exit-on-error --no-owner -U cullis -d cullis < "$backup/db.dump" \
    || die "pg_restore in the compose stack failed (the database must be empty)"
fi
echo "database restored from $backup/db.dump; check it with: cullis-broker audit verify"
