#!/usr/bin/env bash
# Writes the OCI image archive of a sagekeeper binary: tests/stack/image.sh BINARY ARCHIVE.
# The archive is an OCI image layout in a tar (load it with `skopeo copy oci-archive:...`,
# `crane push`, or `podman load`).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=$1 archive=$2
bin=$("$root/tests/stack/build-bins.sh")
version=$(grep -m1 -oE '^version = "[^"]+"' "$root/Cargo.toml" | cut -d'"' -f2)
revision=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
layout=$(mktemp -d)
trap 'rm -rf "$layout"' EXIT
"$bin/image" -binary "$binary" -out "$layout/oci" -version "$version" -revision "$revision"
mkdir -p "$(dirname "$archive")"
tar -C "$layout/oci" -cf "$archive" .
echo "$archive: $(du -h "$archive" | cut -f1)"
