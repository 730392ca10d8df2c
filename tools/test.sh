#!/usr/bin/env bash
# The README's test command: installs what the tests need (tools/test-setup.sh), then runs them.
# Arguments go to `cargo test`, e.g. `tools/test.sh --test flow`. Without arguments the
# store-agnostic black-box tests then run a second time on PostgreSQL (tools/with-postgres.sh):
# one store interface, two implementations, the same behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/test-setup.sh
if [ $# -gt 0 ]; then
  exec cargo test --locked "$@"
fi
cargo test --locked
# The Debian package, built, installed, upgraded and purged for real (needs root, as CI runs).
if [ "$(id -u)" = 0 ]; then
  bash tools/package-test.sh
else
  echo "test.sh: tools/package-test.sh needs root (apt-get install, a system user): not run" >&2
fi
# Left out of the second pass: tests that read sled's files in the data directory
# (what is stored in clear; account_page.rs does too), the browser and ACME tests.
echo "test.sh: the black-box tests again, on PostgreSQL" >&2
exec bash tools/with-postgres.sh cargo test --locked \
  --test flow --test tokens --test attacks --test attacks_hardening --test accounts --test totp \
  --test linking_services --test bad_input --test locale --test login_api --test oauth2_crate \
  --test cli --test ops --test app_linking --test mcp --test mcp_sdk --test linking_log \
  -- --skip the_throttle_stores_no_typed_username_in_clear_and_bounds_long_ones
