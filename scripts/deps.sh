#!/usr/bin/env bash
# deps.sh installs what a fresh Debian machine lacks to build and test unbrick:
# a C compiler for cgo (SQLite), and the real third-party tools the tests hold
# the device models against (stm32flash, avrdude, lrzsz, socat), Chromium for
# the browser tests, and the arm64 cross compiler for `make pi`.
#
#   scripts/deps.sh          # tools for `make test`
#   scripts/deps.sh pi       # also the arm64 cross compiler
set -euo pipefail

want=(gcc:gcc stm32flash:stm32flash avrdude:avrdude sb:lrzsz rb:lrzsz socat:socat chromium:chromium file:file)
if [[ "${1:-}" == pi ]]; then
	want+=(aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu)
fi

missing=()
for w in "${want[@]}"; do
	cmd=${w%%:*} pkg=${w#*:}
	if ! command -v "$cmd" >/dev/null 2>&1; then
		[[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
	fi
done
if [[ "${1:-}" == pi ]] && ! [[ -e /usr/aarch64-linux-gnu/include/stdio.h ]]; then
	missing+=(libc6-dev-arm64-cross)
fi
if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "deps: need root to install ${missing[*]}; run: apt-get update && apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
