package esprom

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// BootLog is what the ROM's boot line says about the boot mode the
// strapping pins selected at reset.
//
// The ESP32 ROM prints, at 115200 (ESP32 Technical Reference Manual, "Boot
// mode"; esptool's _connect_attempt reads it):
//
//	rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)
//	rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))
//	waiting for download
//
// The ESP8266 ROM prints, at 74880 with its 26 MHz crystal, " ets Jan  8
// 2013,rst cause:2, boot mode:(3,6)", where the first number is 1 for UART
// download (GPIO0 low) and 3 for a boot from flash.
type BootLog struct {
	Seen     bool   // a boot line was found
	Line     string // the line that tells the mode
	Mode     int    // the boot value (ESP32 boot:0x.., ESP8266 the first number)
	Download bool   // the ROM entered download mode
}

var (
	esp32Boot   = regexp.MustCompile(`rst:0x[0-9a-fA-F]+ \([A-Z0-9_]+\),boot:0x([0-9a-fA-F]+) \(([^\r\n]*)\)`)
	esp8266Boot = regexp.MustCompile(`rst cause:\d+, boot mode:\((\d+),\d+\)`)
)

// ParseBootLog finds the last boot line in what the unit printed after a
// reset.
func ParseBootLog(b []byte) BootLog {
	var out BootLog
	if m := esp32Boot.FindAllSubmatchIndex(b, -1); m != nil {
		last := m[len(m)-1]
		mode, _ := strconv.ParseInt(string(b[last[2]:last[3]]), 16, 32)
		out = BootLog{Seen: true, Line: string(b[last[0]:last[1]]), Mode: int(mode),
			Download: bytes.HasPrefix(b[last[4]:last[5]], []byte("DOWNLOAD_BOOT"))}
	}
	if m := esp8266Boot.FindAllSubmatchIndex(b, -1); m != nil {
		last := m[len(m)-1]
		mode, _ := strconv.Atoi(string(b[last[2]:last[3]]))
		out = BootLog{Seen: true, Line: string(b[last[0]:last[1]]), Mode: mode, Download: mode == 1}
	}
	if !out.Download && bytes.Contains(b, []byte("waiting for download")) {
		out.Seen, out.Download = true, true
	}
	return out
}

// BootModeError says the unit answered no SYNC and its ROM said it booted
// from flash: GPIO0 was not low when EN rose. It is not a timeout (the
// unit answered, with its boot line) and does not unwrap to one.
type BootModeError struct {
	Line string // the boot line
	Last error  // the last SYNC's error
}

func (e *BootModeError) Error() string {
	return fmt.Sprintf("esprom: not in download mode: GPIO0 strap not low (the ROM printed %q); check the boot line's wiring and the entry sequence", e.Line)
}

// byteReader hands a compressed stream to the inflater a byte at a time
// (flate reads no further than it needs from an io.ByteReader) and counts
// what it took.
type byteReader struct {
	b []byte
	n int
}

func (r *byteReader) ReadByte() (byte, error) {
	if r.n >= len(r.b) {
		return 0, io.EOF
	}
	r.n++
	return r.b[r.n-1], nil
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.n >= len(r.b) {
		return 0, io.EOF
	}
	p[0] = r.b[r.n]
	r.n++
	return 1, nil
}

// InflatedPerBlock returns, for each block of bs bytes of the zlib stream
// z, how many bytes inflating it yields, as esptool counts with an
// incremental decompressor to size each FLASH_DEFL_DATA timeout: output is
// charged to the block holding the last input byte read for it.
func InflatedPerBlock(z []byte, bs int) []uint32 {
	n := (len(z) + bs - 1) / bs
	out := make([]uint32, n)
	if n == 0 {
		return out
	}
	br := &byteReader{b: z}
	zr, err := zlib.NewReader(br)
	if err != nil {
		return out
	}
	buf := make([]byte, 1024)
	for {
		k, err := zr.Read(buf)
		blk := max(br.n-1, 0) / bs
		out[min(blk, n-1)] += uint32(k)
		if err != nil {
			return out
		}
	}
}
