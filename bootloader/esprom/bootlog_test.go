package esprom

import (
	"bytes"
	"testing"
)

func TestParseBootLog(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want BootLog
	}{
		{"esp32 flash", "ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\nflash read err, 1000\r\n",
			BootLog{Seen: true, Line: "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)", Mode: 0x13}},
		{"esp32 download", "ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n",
			BootLog{Seen: true, Line: "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))", Mode: 3, Download: true}},
		{"esp32 last line wins", "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nrst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
			BootLog{Seen: true, Line: "rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)", Mode: 0x13}},
		{"esp8266 flash", "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n",
			BootLog{Seen: true, Line: "rst cause:2, boot mode:(3,6)", Mode: 3}},
		{"esp8266 download", "\r\n ets Jan  8 2013,rst cause:2, boot mode:(1,6)\r\n",
			BootLog{Seen: true, Line: "rst cause:2, boot mode:(1,6)", Mode: 1, Download: true}},
		{"garbage", "\x8f\x12\xe3 at the wrong rate", BootLog{}},
		{"nothing", "", BootLog{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseBootLog([]byte(tt.log)); got != tt.want {
				t.Errorf("ParseBootLog(%q) = %+v, want %+v", tt.log, got, tt.want)
			}
		})
	}
}

// TestInflatedPerBlock: the per-block inflated sizes add up to the data,
// and a stream of zeros charges most of it to its first block, as
// esptool's incremental count does.
func TestInflatedPerBlock(t *testing.T) {
	for _, data := range [][]byte{make([]byte, 1<<20), bytes.Repeat([]byte("unbrick "), 40000)} {
		z := Compress(data)
		per := InflatedPerBlock(z, BlockSize)
		if len(per) != (len(z)+BlockSize-1)/BlockSize {
			t.Fatalf("InflatedPerBlock() gave %d blocks for %d compressed bytes", len(per), len(z))
		}
		var sum uint32
		for _, n := range per {
			sum += n
		}
		if sum != uint32(len(data)) {
			t.Errorf("InflatedPerBlock() sums to %d, want %d", sum, len(data))
		}
		if per[0] < uint32(len(data))/(2*uint32(len(per))) {
			t.Errorf("InflatedPerBlock()[0] = %d of %d over %d blocks: the first block's share is missing", per[0], len(data), len(per))
		}
	}
}
