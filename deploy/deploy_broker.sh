#!/usr/bin/env bash
# Deploys the Cullis broker stack (docker-compose.yml: broker, PostgreSQL, Redis, nginx TLS front).
#
#   deploy/deploy_broker.sh --dev [--domain D]
#   deploy/deploy_broker.sh --prod-acme  --domain D --email E
#   deploy/deploy_broker.sh --prod-byoca --domain D --cert CERT.pem --key KEY.pem
#   deploy/deploy_broker.sh                      (no mode: asks, interactive)
#
# Options:
#   --dir DIR          where .env, certs/ and TLS files go (default: the repository root)
#   --https-port N     published HTTPS port (dev 8443, prod 443)
#   --http-port N      published HTTP port (redirect + ACME; dev 8080, prod 80)
#   --no-compose       prepare everything (.env, broker key, TLS, nginx config) but start nothing
#   --force            regenerate the broker key and TLS files (secrets in .env are always kept)
#   -h, --help
#
# Steps: .env with generated secrets (kept on re-runs) -> `cullis-broker pki init` -> TLS files for
# nginx -> rendered nginx config -> `docker compose up -d` -> `cullis-broker check` (production
# checklist; --prod-* only) -> wait for /healthz and /readyz through
# the public URL -> (acme) issue the certificate with lego over HTTP-01 and reload nginx.
#
# Environment (all optional):
#   CULLIS_COMPOSE_CMD   compose command (default "docker compose", else "docker-compose")
#   CULLIS_BROKER_BIN    cullis-broker binary for `pki init` (default: PATH, then target/release,
#                        else the image through compose)
#   CULLIS_HEALTH_URL    base URL to wait on (default BROKER_PUBLIC_URL)
#   CULLIS_HEALTH_CA     CA file for that wait (default: dev CA in --dev, system roots otherwise)
#   CULLIS_WAIT_SECONDS  how long to wait for health (default 120)
#   ACME_SERVER          ACME directory (default Let's Encrypt production)
#   LEGO_CA_CERTIFICATES extra roots lego trusts for ACME_SERVER (test CAs such as pebble)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
prog="deploy_broker.sh"

die() { echo "$prog: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

mode="" domain="" email="" cert="" key="" dir="$repo"
https_port="" http_port="" no_compose=0 force=0

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dev) mode=dev; shift ;;
      --prod-acme) mode=acme; shift ;;
      --prod-byoca) mode=byoca; shift ;;
      --domain) domain="${2:?--domain needs a value}"; shift 2 ;;
      --email) email="${2:?--email needs a value}"; shift 2 ;;
      --cert) cert="${2:?--cert needs a value}"; shift 2 ;;
      --key) key="${2:?--key needs a value}"; shift 2 ;;
      --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
      --https-port) https_port="${2:?--https-port needs a value}"; shift 2 ;;
      --http-port) http_port="${2:?--http-port needs a value}"; shift 2 ;;
      --no-compose) no_compose=1; shift ;;
      --force) force=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
}

# No mode on the command line: ask, like the reference's interactive menu.
ask_interactively() {
  [ -t 0 ] || die "no mode given and stdin is not a terminal: pass --dev, --prod-acme or --prod-byoca (see --help)"
  echo "Deploy the Cullis broker:"
  echo "  1) development (self-signed TLS, https://localhost:8443)"
  echo "  2) production with a Let's Encrypt certificate (ACME HTTP-01)"
  echo "  3) production with your own certificate and key"
  local choice
  read -r -p "Choice [1-3]: " choice
  case "$choice" in
    1) mode=dev ;;
    2) mode=acme ;;
    3) mode=byoca ;;
    *) die "no such choice '$choice'" ;;
  esac
  if [ "$mode" != dev ]; then read -r -p "Public domain name: " domain; fi
  if [ "$mode" = acme ]; then read -r -p "Contact e-mail for the ACME account: " email; fi
  if [ "$mode" = byoca ]; then
    read -r -p "Certificate chain PEM file: " cert
    read -r -p "Private key PEM file: " key
  fi
}

check_args() {
  case "$mode" in
    dev) domain="${domain:-localhost}" ;;
    acme)
      [ -n "$domain" ] || die "--prod-acme needs --domain D"
      [ -n "$email" ] || die "--prod-acme needs --email E"
      ;;
    byoca)
      [ -n "$domain" ] || die "--prod-byoca needs --domain D"
      [ -n "$cert" ] && [ -n "$key" ] || die "--prod-byoca needs --cert C and --key K"
      [ -r "$cert" ] || die "certificate file '$cert' does not exist or is not readable"
      [ -r "$key" ] || die "key file '$key' does not exist or is not readable"
      ;;
    *) die "unknown mode '$mode'" ;;
  esac
  [[ "$domain" =~ ^[A-Za-z0-9.-]+$ ]] || die "--domain '$domain' is not a host name"
  if [ "$mode" = dev ]; then
    https_port="${https_port:-8443}"; http_port="${http_port:-8080}"
  else
    https_port="${https_port:-443}"; http_port="${http_port:-80}"
  fi
}

check_prereqs() {
  command -v openssl >/dev/null || die "openssl is required (apt-get install -y openssl)"
  command -v curl >/dev/null || die "curl is required (apt-get install -y curl)"
  if [ "$mode" = acme ] && [ "$no_compose" = 0 ]; then
    command -v lego >/dev/null || die "--prod-acme uses lego for ACME (apt-get install -y lego)"
  fi
  [ "$no_compose" = 1 ] && return 0
  if [ -n "${CULLIS_COMPOSE_CMD:-}" ]; then
    compose=($CULLIS_COMPOSE_CMD)
  elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
  else
    die "docker compose is required (https://docs.docker.com/compose/install/), or pass --no-compose"
  fi
}

# Reads KEY from an existing .env (empty when absent).
env_value() { [ -f "$env_file" ] && sed -n "s/^$1=//p" "$env_file" | tail -1 || true; }

public_url() {
  if [ "$https_port" = 443 ]; then echo "https://$domain"; else echo "https://$domain:$https_port"; fi
}

# .env: compose interpolation values and the broker's settings. Secrets survive re-runs: the
# PostgreSQL password is baked into its volume at first start, and rotating ADMIN_SECRET by
# accident would lock the operator out.
write_env() {
  env_file="$dir/.env"
  local admin_secret pg_password dashboard_key production log_format require_san secrets=kept
  admin_secret="$(env_value ADMIN_SECRET)"
  pg_password="$(env_value POSTGRES_PASSWORD)"
  dashboard_key="$(env_value DASHBOARD_SIGNING_KEY)"
  [ -n "$admin_secret" ] || { admin_secret="$(openssl rand -hex 32)"; secrets=generated; }
  [ -n "$pg_password" ] || pg_password="$(openssl rand -hex 24)"
  [ -n "$dashboard_key" ] || dashboard_key="$(openssl rand -hex 32)"
  if [ "$mode" = dev ]; then
    production=development; log_format=text; require_san=false
  else
    production=production; log_format=json; require_san=true
  fi
  local broker_uid="10001:10001"
  if [ "$(id -u)" != 0 ]; then broker_uid="$(id -u):$(id -g)"; fi
  umask 077
  cat > "$env_file.tmp" <<EOF
# Written by deploy/deploy_broker.sh --${mode/acme/prod-acme} on $(date -u +%Y-%m-%dT%H:%M:%SZ).
# Every variable is documented in deploy/.env.example. Secrets are kept when the script re-runs.
CULLIS_MODE=$mode
CULLIS_DOMAIN=$domain
HTTPS_PORT=$https_port
HTTP_PORT=$http_port
BROKER_PUBLIC_URL=$(public_url)
ADMIN_SECRET=$admin_secret
POSTGRES_PASSWORD=$pg_password
DASHBOARD_SIGNING_KEY=$dashboard_key
ENVIRONMENT=$production
LOG_FORMAT=$log_format
REQUIRE_SPIFFE_SAN=$require_san
TRUST_DOMAIN=atn.local
POLICY_WEBHOOK_ALLOW_PRIVATE_IPS=true
CULLIS_CERTS_DIR=$dir/certs
CULLIS_TLS_DIR=$dir/nginx-compat/certs
CULLIS_NGINX_CONF=$dir/deploy/state/nginx.conf
CULLIS_ACME_WEBROOT=$dir/deploy/state/acme-webroot
BROKER_UID=$broker_uid
EOF
  mv "$env_file.tmp" "$env_file"
  chmod 600 "$env_file"
  umask 022
  say "wrote $env_file (BROKER_PUBLIC_URL=$(public_url); secrets $secrets)"
}

# The broker's token-signing key and CA, created once by the broker itself.
pki_init() {
  local certs="$dir/certs"
  mkdir -p "$certs"
  if [ "$force" = 1 ]; then rm -f "$certs/broker-ca-key.pem" "$certs/broker-ca.pem"; fi
  local bin="${CULLIS_BROKER_BIN:-}"
  if [ -z "$bin" ] && command -v cullis-broker >/dev/null; then bin="$(command -v cullis-broker)"; fi
  if [ -z "$bin" ] && [ -x "$repo/target/release/cullis-broker" ]; then bin="$repo/target/release/cullis-broker"; fi
  if [ -n "$bin" ]; then
    say "cullis-broker pki init ($bin)"
    (cd "$dir" && env -i PATH="$PATH" BROKER_CA_KEY_PATH="$certs/broker-ca-key.pem" \
      BROKER_CA_CERT_PATH="$certs/broker-ca.pem" "$bin" pki init)
  elif [ "$no_compose" = 0 ]; then
    say "cullis-broker pki init (in the broker image)"
    "${compose[@]}" --env-file "$env_file" -f "$repo/docker-compose.yml" --profile setup run --rm broker-pki
  else
    die "no cullis-broker binary for 'pki init': set CULLIS_BROKER_BIN or build it (cargo build --release -p cullis-broker)"
  fi
  # The image runs as BROKER_UID; a root-run deploy hands it the key files.
  if [ "$(id -u)" = 0 ]; then chown -R 10001:10001 "$certs"; fi
}

# TLS files nginx serves: nginx-compat/certs/server.pem (chain) and server-key.pem.
place_tls() {
  local tls="$dir/nginx-compat/certs"
  mkdir -p "$tls"
  local force_flag=()
  [ "$force" = 1 ] && force_flag=(--force)
  case "$mode" in
    dev|acme)
      # acme: a temporary certificate for the domain so nginx can start and serve HTTP-01.
      "$repo/nginx-compat/generate_tls_cert.sh" --out "$tls" --name "$domain" "${force_flag[@]}"
      ;;
    byoca) place_own_certificate "$tls" ;;
  esac
}

place_own_certificate() {
  local tls="$1" cert_pub key_pub
  openssl x509 -in "$cert" -noout 2>/dev/null || die "'$cert' is not a PEM certificate"
  cert_pub="$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)"
  key_pub="$(openssl pkey -in "$key" -pubout 2>/dev/null)" || die "'$key' is not a readable PEM private key (encrypted keys are not supported)"
  [ "$cert_pub" = "$key_pub" ] || die "the key '$key' does not belong to the certificate '$cert'"
  openssl x509 -in "$cert" -noout -checkhost "$domain" | grep -q 'does match' \
    || die "the certificate '$cert' does not cover '$domain' (check its subjectAltName)"
  openssl x509 -in "$cert" -noout -checkend 0 >/dev/null || die "the certificate '$cert' has expired"
  if openssl x509 -in "$cert" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE'; then
    die "the certificate '$cert' is a CA certificate (CA:TRUE); serve a leaf certificate issued by your CA"
  fi
  install -m 644 "$cert" "$tls/server.pem"
  install -m 600 "$key" "$tls/server-key.pem"
  say "placed your certificate for $domain in $tls"
}

# nginx-compat/nginx.conf with this deployment's name and redirect (see the tokens listed there).
render_nginx_conf() {
  mkdir -p "$dir/deploy/state/acme-webroot/.well-known/acme-challenge"
  local redirect="https://\$host:$https_port"
  [ "$https_port" = 443 ] && redirect="https://\$host"
  sed -e "s|server_name localhost;|server_name $domain;|" \
      -e "s|https://\$host:8443|$redirect|" \
      "$repo/nginx-compat/nginx.conf" > "$dir/deploy/state/nginx.conf"
  say "rendered $dir/deploy/state/nginx.conf (server_name $domain)"
}

compose_up() {
  say "${compose[*]} up -d"
  "${compose[@]}" --env-file "$env_file" -f "$repo/docker-compose.yml" up -d --build
}

# --prod-*: the runbook's production checklist, run by the broker image with the stack's settings
# (`cullis-broker check`: one PASS/FAIL line per item). A failing item stops the deployment; the
# broker itself also refuses to start in production while one fails.
production_check() {
  [ "$mode" = dev ] && return 0
  say "cullis-broker check (production checklist)"
  "${compose[@]}" --env-file "$env_file" -f "$repo/docker-compose.yml" run --rm --no-deps broker check \
    || die "the production checklist fails (FAIL lines above): fix those settings in $env_file and run again"
}

# Waits for GET <url> to answer 200.
wait_for() {
  local url="$1" deadline=$((SECONDS + ${CULLIS_WAIT_SECONDS:-120}))
  local ca=(); [ -n "$health_ca" ] && ca=(--cacert "$health_ca")
  until curl -fsS -o /dev/null --max-time 5 "${ca[@]}" "$url" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "$url did not answer 200 within ${CULLIS_WAIT_SECONDS:-120} s: check '${compose[*]} logs broker nginx'"
    sleep 1
  done
  say "$url OK"
}

# Waits for /healthz and /readyz through the public URL. The CA to trust: CULLIS_HEALTH_CA, else
# the dev CA while nginx serves a certificate from generate_tls_cert.sh, else the system roots.
wait_healthy() {
  local base="${CULLIS_HEALTH_URL:-$(public_url)}" dev_ca="$dir/nginx-compat/certs/ca.pem"
  health_ca="${CULLIS_HEALTH_CA:-}"
  if [ "$mode" = acme ] && [ -z "${acme_done:-}" ]; then
    health_ca=""; [ -f "$dev_ca" ] && health_ca="$dev_ca"
  elif [ -z "$health_ca" ] && [ "$mode" = dev ]; then
    health_ca="$dev_ca"
  fi
  wait_for "$base/healthz"
  wait_for "$base/readyz"
}

# ACME HTTP-01 through nginx's webroot, then swap the certificate and reload nginx.
acme_issue() {
  local state="$dir/deploy/state/lego" webroot="$dir/deploy/state/acme-webroot"
  local server="${ACME_SERVER:-https://acme-v02.api.letsencrypt.org/directory}"
  say "requesting a certificate for $domain from $server (lego, HTTP-01 webroot)"
  lego --accept-tos --email "$email" --domains "$domain" --server "$server" --path "$state" \
    --http --http.webroot "$webroot" run \
    || die "ACME issuance failed: check that http://$domain/.well-known/acme-challenge/ reaches this nginx on port 80"
  install -m 644 "$state/certificates/$domain.crt" "$dir/nginx-compat/certs/server.pem"
  install -m 600 "$state/certificates/$domain.key" "$dir/nginx-compat/certs/server-key.pem"
  rm -f "$dir/nginx-compat/certs/ca.pem" "$dir/nginx-compat/certs/ca-key.pem"
  "${compose[@]}" --env-file "$env_file" -f "$repo/docker-compose.yml" exec -T nginx nginx -s reload
  acme_done=1
  say "certificate installed; renew from cron, e.g.:"
  echo "   0 3 * * * cd $dir && lego --email $email --domains $domain --server $server --path $state --http --http.webroot $webroot renew --days 30 && install -m 644 $state/certificates/$domain.crt nginx-compat/certs/server.pem && install -m 600 $state/certificates/$domain.key nginx-compat/certs/server-key.pem && ${compose[*]} exec -T nginx nginx -s reload"
}

summary() {
  echo
  say "Cullis broker ($mode) at $(public_url)"
  echo "   admin secret:   ADMIN_SECRET in $env_file"
  echo "   health:         curl $(public_url)/healthz ; curl $(public_url)/readyz"
  echo "   invite an org:  curl -X POST -H \"x-admin-secret: \$ADMIN_SECRET\" -H 'content-type: application/json' -d '{\"label\":\"acme\"}' $(public_url)/v1/admin/invites"
  echo "   proxies:        join with --broker $(public_url) (the DPoP htu base; see docs/runbook.md)"
  [ "$mode" = dev ] && echo "   dev TLS CA:     $dir/nginx-compat/certs/ca.pem (curl --cacert, MCP_PROXY_BROKER_CA_BUNDLE)"
  echo "   runbook:        docs/runbook.md"
}

main() {
  parse_args "$@"
  [ -n "$mode" ] || ask_interactively
  check_args
  check_prereqs
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  write_env
  pki_init
  place_tls
  render_nginx_conf
  if [ "$no_compose" = 1 ]; then
    say "--no-compose: not starting the stack; start it with: docker compose --env-file $env_file up -d"
    summary
    return 0
  fi
  compose_up
  production_check
  wait_healthy
  if [ "$mode" = acme ]; then
    acme_issue
    wait_healthy
  fi
  summary
}

main "$@"
