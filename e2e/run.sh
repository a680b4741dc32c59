#!/usr/bin/env bash
# The two-organisation full-stack scenario with release binaries (ref-proxy-e2e-deploy §12):
# builds cullis-broker and cullis-proxy once in release, then runs e2e/tests/full_stack.rs
# against them — broker on a fresh PostgreSQL database + Redis, two proxies, their PDP webhooks,
# all real processes on loopback — and tears everything down.
#   KEEP_E2E_STACK=1 e2e/run.sh   keeps the stack up at the end and prints its URLs.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379.
# (`./scripts/test.sh` runs the same scenario on the debug build as part of the whole suite.)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> building release binaries (cullis-broker, cullis-proxy)"
# --workspace on both: features resolve as in every other build, so nothing is rebuilt twice.
cargo build --release --locked --workspace --bins
echo "==> full-stack scenario against $target/release"
CULLIS_BIN_DIR="$target/release" cargo test --locked --workspace --test full_stack -- --nocapture
