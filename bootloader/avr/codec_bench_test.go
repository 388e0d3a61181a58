package avr_test

import (
	"testing"

	"github.com/unbrick/unbrick/bootloader/avr"
)

// BenchmarkReadPageReply encodes and decodes one 128-byte READ_PAGE answer
// (STK_INSYNC, the page, STK_OK), the answer avrdude and the client read
// for every page they verify.
func BenchmarkReadPageReply(b *testing.B) {
	page := make([]byte, 128)
	for i := range page {
		page[i] = byte(i * 29)
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		raw := avr.EncodeReply(page)
		got, err := avr.DecodeReply(avr.CmdReadPage, raw, len(page))
		if err != nil || len(got) != len(page) {
			b.Fatalf("DecodeReply = %d bytes, %v", len(got), err)
		}
	}
}
