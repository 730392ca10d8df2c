#!/usr/bin/env bash
# The README's test command: installs what the tests need (tools/test-setup.sh), then runs them.
# Arguments go to `cargo test`, e.g. `tools/test.sh --test flow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/test-setup.sh
exec cargo test --locked "$@"
