#!/usr/bin/env bash
# deps.sh installs what a fresh Debian machine lacks to build and test unbrick:
# a C compiler for cgo (SQLite), the real third-party peers the tests hold the
# clients and device models against (stm32flash, avrdude, lrzsz, socat, real
# U-Boot in QEMU, real optiboot in simavr, esptool-js), Chromium for the
# browser tests, and the arm64 cross compiler for `make pi`.
#
#   scripts/deps.sh          # tools for `make test`
#   scripts/deps.sh pi       # also the arm64 cross compiler
#
# Peers that no Debian package ships ready to run are built by the scripts in
# scripts/peers/ into .peers/ (see internal/peertest).
set -euo pipefail
cd "$(dirname "$0")/.."

# command-or-file:package. A want whose left side starts with / is a file.
want=(
	gcc:gcc pkg-config:pkg-config file:file
	stm32flash:stm32flash avrdude:avrdude sb:lrzsz rb:lrzsz socat:socat
	chromium:chromium node:nodejs npm:npm
	qemu-system-aarch64:qemu-system-arm
	/usr/lib/u-boot/qemu_arm64/u-boot.bin:u-boot-qemu
	simavr:simavr /usr/include/simavr/sim_avr.h:libsimavr-dev
	/usr/include/simavr/parts/uart_pty.h:libsimavr-dev
	/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot.c:arduino-core-avr
	avr-gcc:gcc-avr /usr/lib/avr/include/avr/io.h:avr-libc avr-objcopy:binutils-avr
	/usr/include/libelf.h:libelf-dev
)
if [[ "${1:-}" == pi ]]; then
	want+=(aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu /usr/aarch64-linux-gnu/include/stdio.h:libc6-dev-arm64-cross)
fi

missing=()
for w in "${want[@]}"; do
	what=${w%%:*} pkg=${w#*:}
	if [[ $what == /* ]]; then
		[[ -e $what ]] && continue
	elif command -v "$what" >/dev/null 2>&1; then
		continue
	fi
	[[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
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
fi

[[ "${1:-}" == pi ]] && exit 0
# The peers built from source or fetched from npm, each by its own script,
# each quick when its output is already there.
for s in scripts/peers/*.sh; do
	[[ -e $s ]] || continue
	bash "$s"
done
