#!/usr/bin/env bash
# Development TLS for the nginx front: a small CA and a serverAuth leaf signed by it.
#
#   nginx-compat/generate_tls_cert.sh [--out DIR] [--name HOST]... [--days N] [--force]
#
# Writes into DIR (default: nginx-compat/certs next to this script):
#   ca.pem, ca-key.pem          the CA clients trust (curl --cacert, MCP_PROXY_BROKER_CA_BUNDLE)
#   server.pem, server-key.pem  the leaf nginx serves (CN = first name; SAN = every --name plus
#                               localhost and 127.0.0.1)
# Why not one self-signed certificate: rustls/webpki clients (the proxy, the Rust tests) reject a
# CA:TRUE certificate used as the server's own ("CaUsedAsEndEntity"); the leaf here is CA:FALSE
# with extendedKeyUsage=serverAuth. Existing files are kept unless --force.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/certs"
names=()
days=825
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --name) names+=("$2"); shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "generate_tls_cert.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v openssl >/dev/null || { echo "generate_tls_cert.sh: openssl is required (apt-get install -y openssl)" >&2; exit 1; }

mkdir -p "$out"
if [ "$force" = 0 ] && [ -s "$out/server.pem" ] && [ -s "$out/server-key.pem" ]; then
  echo "TLS certificate already present in $out (use --force to replace it)"
  exit 0
fi

# SAN: the given names (IP literals as IP entries) plus localhost and 127.0.0.1, without duplicates.
san=""
seen=" "
for n in "${names[@]}" localhost 127.0.0.1; do
  case "$seen" in *" $n "*) continue ;; esac
  seen="$seen$n "
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
done
san="${san#,}"
cn="${names[0]:-localhost}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=Cullis dev TLS CA/O=Cullis" \
  -addext 'basicConstraints=critical,CA:TRUE,pathlen:0' \
  -addext 'keyUsage=critical,keyCertSign,cRLSign' \
  -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn/O=Cullis" \
  -keyout "$work/server-key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "$san" > "$work/leaf.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
  -CAcreateserial -days "$days" -extfile "$work/leaf.ext" -out "$work/server.pem" 2>/dev/null

install -m 600 "$work/ca-key.pem" "$out/ca-key.pem"
install -m 644 "$work/ca.pem" "$out/ca.pem"
install -m 600 "$work/server-key.pem" "$out/server-key.pem"
install -m 644 "$work/server.pem" "$out/server.pem"
echo "wrote $out/server.pem (SAN $san) signed by $out/ca.pem"
