package ymodem_test

import (
	"context"
	"testing"

	"github.com/unbrick/unbrick/bootloader/ymodem"
)

// BenchmarkCRC16 is the CRC of one 1 KiB block, computed for every block
// sent and received.
func BenchmarkCRC16(b *testing.B) {
	blk := payload(1024, 1)
	b.SetBytes(int64(len(blk)))
	b.ReportAllocs()
	for b.Loop() {
		ymodem.CRC16(blk)
	}
}

// BenchmarkRoundTrip256K sends a 256 KiB file with YMODEM-1K to the
// receiver over an in-memory link with no pacing: what the codec costs on
// both sides, in time and allocations, apart from the wire.
func BenchmarkRoundTrip256K(b *testing.B) {
	file := ymodem.File{Name: "app.bin", Data: payload(256<<10, 2)}
	b.SetBytes(int64(len(file.Data)))
	b.ReportAllocs()
	for b.Loop() {
		a, r := portPair()
		ctx := context.Background()
		done := make(chan error, 1)
		go func() {
			got, err := ymodem.Receive(ctx, r, ymodem.Options{})
			if err == nil && (len(got) != 1 || len(got[0].Data) != len(file.Data)) {
				b.Errorf("Receive got %d files", len(got))
			}
			done <- err
		}()
		if err := ymodem.Send(ctx, a, []ymodem.File{file}, ymodem.Options{}); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
