#!/bin/sh
# Writes vendor/<crate>/opcgw.patch: exactly what the vendored copy changes in the published
# crate (`patch -p1` in the pristine crate's directory applies it). The published crates are
# fetched by cargo into a throw-away project, since the workspace's [patch] keeps cargo from
# downloading them. Usage: vendor/diff-against-upstream.sh (from the workspace root).
set -eu
version=0.19.0
root=$(pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/fetch/src"
: > "$scratch/fetch/src/lib.rs"
cat > "$scratch/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-upstream"
version = "0.0.0"
edition = "2021"
[dependencies]
async-opcua-server = "=$version"
async-opcua-crypto = "=$version"
TOML
(cd "$scratch/fetch" && cargo fetch --quiet)
registry=${CARGO_HOME:-$HOME/.cargo}/registry/src
for crate in async-opcua-server async-opcua-crypto; do
    upstream=$(ls -d "$registry"/*/"$crate-$version" | head -n 1)
    cp -r "$upstream" "$scratch/a"
    cp -r "$root/vendor/$crate" "$scratch/b"
    # diff exits 1 when the trees differ: that is the expected outcome.
    (cd "$scratch" && diff -ruN -x Cargo.lock -x PATCHES.md -x opcgw.patch a b || [ $? -eq 1 ]) \
        | sed -E 's/^((---|\+\+\+) [^\t]+)\t.*/\1/' > "$root/vendor/$crate/opcgw.patch"
    rm -rf "$scratch/a" "$scratch/b"
    echo "vendor/$crate/opcgw.patch: $(grep -c '^diff ' "$root/vendor/$crate/opcgw.patch") files"
done
