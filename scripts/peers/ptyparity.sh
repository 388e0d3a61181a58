#!/usr/bin/env bash
# ptyparity.sh builds the LD_PRELOAD shim that lets stm32flash run at 8E1
# on a pseudo-terminal (a pty drops PARENB and stm32flash refuses the port;
# see sim/stm32sim/testdata/ptyparity.c) into .peers/ptyparity.so, for
# `unbrick bench`'s side-by-side run against stm32flash. Quick when built.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=sim/stm32sim/testdata/ptyparity.c
out=${UNBRICK_PEERS:-$PWD/.peers}/ptyparity.so
if [[ -f $out && $out -nt $src ]]; then
	exit 0
fi
mkdir -p "$(dirname "$out")"
cc -shared -fPIC -O2 -o "$out" "$src" -ldl
echo "ptyparity.sh: built $out" >&2
