#!/usr/bin/env bash
# The project's test command (the README names it; CI runs it).
# Builds the workspace once and runs every unit, integration and doc test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked --no-fail-fast "$@"
