#!/usr/bin/env bash
# esptool-js.sh installs Espressif's esptool-js, pinned, from npm into
# .peers/esptool-js (internal/peertest.Dir), for the tests that flash the
# project's ESP32 model with it (internal/peertest/esptooljs). Quick when the
# pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=0.7.0
dir=${UNBRICK_PEERS:-$PWD/.peers}/esptool-js
stamp=$dir/node_modules/esptool-js/package.json
if [[ -f $stamp ]] && grep -q "\"version\": \"$version\"" "$stamp"; then
	exit 0
fi
command -v npm >/dev/null || { echo "esptool-js: npm is missing (Debian package npm): run scripts/deps.sh" >&2; exit 1; }
mkdir -p "$dir"
cat >"$dir/package.json" <<JSON
{
  "name": "unbrick-peer-esptool-js",
  "private": true,
  "description": "esptool-js pinned for unbrick's peer tests",
  "dependencies": { "esptool-js": "$version" }
}
JSON
echo "esptool-js: installing esptool-js@$version into $dir" >&2
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact "esptool-js@$version" >&2
