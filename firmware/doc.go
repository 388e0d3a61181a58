// Package firmware loads, checks and keeps the firmware images the bench
// writes: raw binaries, Intel HEX files and ELF executables become segments
// with addresses, flattened to the bytes actually written and named by their
// SHA-256; minisign signatures are checked against the keys the bench
// trusts; a content-addressed store keeps the bytes on disk; the catalog (the
// versions log) records every image with its version, target hardware
// revisions, purpose and who added it.
//
// Formats: Intel HEX as in Intel's "Hexadecimal Object File Format
// Specification" rev. A (https://archive.org/details/IntelHEXStandard), ELF as
// in the System V ABI (https://refspecs.linuxfoundation.org/elf/gabi4+/ch5.pheader.html),
// minisign as in https://jedisct1.github.io/minisign/.
package firmware
