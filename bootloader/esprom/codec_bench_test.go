package esprom_test

import (
	"testing"

	"github.com/unbrick/unbrick/bootloader/esprom"
)

// codecBlock is a flash block as FLASH_DATA carries it: 16 bytes of header
// and 16 KiB of data, with enough C0 and DB bytes to exercise the escapes.
func codecBlock() []byte {
	b := make([]byte, 16+16<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// BenchmarkAppendSLIP frames one 16 KiB FLASH_DATA request into a reused
// buffer: the encoder must not allocate once the buffer has grown.
func BenchmarkAppendSLIP(b *testing.B) {
	blk := codecBlock()
	pkt := esprom.AppendRequest(nil, esprom.OpFlashData, esprom.Checksum(blk[16:]), blk)
	buf := esprom.AppendSLIP(nil, pkt)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		buf = esprom.AppendSLIP(buf[:0], pkt)
	}
}

// BenchmarkSLIPDecode splits a stream of framed 16 KiB packets byte by byte,
// as the client reads them, and decodes each as a response.
func BenchmarkSLIPDecode(b *testing.B) {
	blk := codecBlock()
	stream := esprom.AppendSLIP(nil, esprom.AppendResponse(nil, esprom.OpReadFlash, 0, blk, 0, 0, 2))
	var d esprom.SLIPDecoder
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, c := range stream {
			pkt, err := d.Feed(c)
			if err != nil {
				b.Fatal(err)
			}
			if pkt != nil {
				if _, err := esprom.DecodeResponse(pkt, 2, len(blk)); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		if n != 1 {
			b.Fatalf("decoded %d packets, want 1", n)
		}
	}
}
