#!/usr/bin/env bash
# optiboot.sh builds the real-optiboot peer for the tests (internal/peertest,
# SimAVR): optiboot for the ATmega328P from Debian arduino-core-avr's
# optiboot.c with avr-gcc, once with LED_START_FLASHES=0 and once with the
# stock value 3 (Arduino's Makefile target "atmega328"), a copy of the stock
# prebuilt optiboot_atmega328.hex, and the C harness that runs any of them on
# simavr with UART0 on a pseudo-terminal, and a copy of the Mega 2560's
# STK500v2 bootloader. Output in .peers/optiboot/ (or
# $UNBRICK_PEERS/optiboot/). Quick when its output is up to date.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot
harness=internal/peertest/simavr/harness.c
out=${UNBRICK_PEERS:-.peers}/optiboot
mkdir -p "$out"

for need in "$src/optiboot.c" "$src/optiboot_atmega328.hex" /usr/include/simavr/parts/uart_pty.h; do
	if [[ ! -e $need ]]; then
		echo "optiboot.sh: $need is missing (scripts/deps.sh installs arduino-core-avr and libsimavr-dev)" >&2
		exit 1
	fi
done

# up_to_date TARGET SOURCE...: TARGET exists and is newer than every source
# (and than this script).
up_to_date() {
	local t=$1
	shift
	[[ -e $t ]] || return 1
	for s in "$@" "$0"; do
		[[ $t -nt $s ]] || return 1
	done
}

# The flags of Arduino's Makefile for the atmega328 target: -Os, the boot
# section at TEXT, the version word at 0x7FFE, no start files. Debian's
# avr-gcc 5.4 makes bigger code than the gcc 4.3 the stock hex was built
# with: LED_START_FLASHES=3 comes to 532 bytes, so that build links at
# 0x7C00 (the 1 KiB boot section, BOOTSZ=10) instead of 0x7E00. Its
# behaviour is the same; the stock prebuilt hex keeps the stock layout.
build() { # NAME FLASHES TEXT
	local name=$1 flashes=$2 text=$3
	local elf=$out/$name.elf hex=$out/$name.hex
	up_to_date "$hex" "$src/optiboot.c" && return 0
	avr-gcc -g -Os -fno-inline-small-functions -fno-split-wide-types -mshort-calls \
		-mmcu=atmega328p -DF_CPU=16000000L -DBAUD_RATE=115200 -DLED_START_FLASHES="$flashes" \
		-Wl,--section-start=.text=$text -Wl,--section-start=.version=0x7ffe -Wl,--relax -nostartfiles \
		-I"$src" -o "$elf" "$src/optiboot.c"
	avr-objcopy -j .text -j .data -j .version --set-section-flags .version=alloc,load -O ihex "$elf" "$hex"
	local size
	size=$(avr-size -A "$elf" | awk '$1 == ".text" {print $2}')
	if ((size > 0x7ffe - text)); then
		echo "optiboot.sh: $name: .text is $size bytes, more than fits between $text and the version word at 0x7FFE" >&2
		exit 1
	fi
	echo "optiboot.sh: built $hex (LED_START_FLASHES=$flashes, $size bytes of code)" >&2
}
build optiboot_flashes0 0 0x7e00
build optiboot_flashes3 3 0x7c00
up_to_date "$out/optiboot_atmega328_stock.hex" "$src/optiboot_atmega328.hex" ||
	cp "$src/optiboot_atmega328.hex" "$out/optiboot_atmega328_stock.hex"
# The Arduino Mega 2560's own bootloader (STK500v2, avrdude -c wiring), as
# arduino-core-avr ships it, run by the same harness on simavr's atmega2560.
wiring=/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex
up_to_date "$out/stk500boot_v2_mega2560.hex" "$wiring" || cp "$wiring" "$out/stk500boot_v2_mega2560.hex"

if ! up_to_date "$out/harness" "$harness"; then
	gcc -O2 -Wall -o "$out/harness" "$harness" \
		$(pkg-config --cflags simavr 2>/dev/null || echo -I/usr/include/simavr) \
		-lsimavrparts -lsimavr -lelf -lpthread -lutil
	echo "optiboot.sh: built $out/harness" >&2
fi
