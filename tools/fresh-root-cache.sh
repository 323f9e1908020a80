#!/usr/bin/env bash
# Prepares the base root that ../shared/tools/fresh-machine-check unpacks, as a brand-new machine of
# THIS network would be: a minimal Debian 12 (mmdebstrap, cached in $FRESH_BASE_CACHE) plus this
# host's CA bundle. On networks whose HTTPS goes through a TLS-inspecting proxy, every machine
# trusts the proxy's CA through its system store (here /usr/local/share/ca-certificates); a root
# built from Debian's archive alone does not, and the npm registry then fails TLS. Nothing else of
# this host enters the root.
#
# usage: tools/fresh-root-cache.sh DIR   -> DIR/bookworm-minbase.tar; then
#        FRESH_CACHE=DIR ../shared/tools/fresh-machine-check .
set -euo pipefail
out=${1:?usage: tools/fresh-root-cache.sh DIR}
base_cache=${FRESH_BASE_CACHE:-/var/tmp/fresh-machine}
base=$base_cache/bookworm-minbase.tar
if [ ! -f "$base" ]; then
  # mmdebstrap picks its output format from the name: it must end in .tar (a leftover directory
  # from a run that named it otherwise is replaced).
  mkdir -p "$base_cache"
  rm -rf "$base" "$base.part.tar"
  echo "fresh-root-cache: building a minimal Debian 12 root (once, ~2 min) ..." >&2
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,git,sudo bookworm "$base.part.tar"
  mv "$base.part.tar" "$base"
fi
mkdir -p "$out"
cp "$base" "$out/bookworm-minbase.tar.part"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/etc/ssl/certs" "$stage/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/"
cp /usr/local/share/ca-certificates/*.crt "$stage/usr/local/share/ca-certificates/" 2>/dev/null || true
# appended entries replace the base's when the tarball is unpacked
tar -rf "$out/bookworm-minbase.tar.part" -C "$stage" etc/ssl/certs/ca-certificates.crt usr/local/share/ca-certificates
mv "$out/bookworm-minbase.tar.part" "$out/bookworm-minbase.tar"
