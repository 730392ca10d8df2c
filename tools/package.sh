#!/usr/bin/env bash
# Builds the Debian package target/debian/linkgate_<version>-1_<arch>.deb with cargo-deb
# (from crates.io, installed under target/tools on first use). What goes in it, and where, is
# [package.metadata.deb] in Cargo.toml; the unit and the config are staged here with the
# package's paths (/usr/bin/linkgate, /var/lib/linkgate).
#
#   tools/package.sh          the release binary
#   tools/package.sh --dev    the debug binary: the same package, built in a fraction of the
#                             time (tools/package-test.sh uses it)
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
profile=release
bin_dir=target/release
if [ "${1:-}" = --dev ]; then
  profile=dev
  bin_dir=target/debug
fi
cargo_deb=target/tools/bin/cargo-deb
if ! grep -q "$CARGO_DEB_VERSION" <<<"$("$cargo_deb" --version 2>/dev/null)"; then
  echo "package.sh: installing cargo-deb $CARGO_DEB_VERSION from crates.io" >&2
  cargo install --quiet --locked --root target/tools --version "$CARGO_DEB_VERSION" cargo-deb
fi
cargo build --quiet --locked --profile "$profile"
stage=target/deb-assets
rm -rf "$stage"
mkdir -p "$stage"
cp "$bin_dir/linkgate" "$stage/linkgate"
sed 's#/usr/local/bin/linkgate#/usr/bin/linkgate#g' systemd/linkgate.service > "$stage/linkgate.service"
# The example config, with the data directory where the package creates it.
sed 's|^path = "data" .*|path = "/var/lib/linkgate"                # sled database directory (created by the package, mode 0700)|' \
  config.example.toml > "$stage/linkgate.toml"
grep -q '^path = "/var/lib/linkgate"' "$stage/linkgate.toml"
"$cargo_deb" --no-build --no-strip --output target/debian/ >&2
ls target/debian/linkgate_*.deb
