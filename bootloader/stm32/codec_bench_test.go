package stm32_test

import (
	"testing"

	"github.com/unbrick/unbrick/bootloader/stm32"
)

// BenchmarkWriteFrame builds one WRITE MEMORY exchange as the client sends
// it (command, address, 256-byte data frame) into a reused buffer and
// decodes the three ACKs it waits for, with the BUSY bytes some ROMs send.
func BenchmarkWriteFrame(b *testing.B) {
	data := make([]byte, 256)
	for i := range data {
		data[i] = byte(i * 13)
	}
	acks := []byte{stm32.ACK, stm32.BUSY, stm32.ACK, stm32.BUSY, stm32.BUSY, stm32.ACK}
	var buf []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = stm32.AppendCommand(buf[:0], stm32.CmdWrite)
		buf = stm32.AppendAddress(buf, 0x08004000)
		buf = stm32.AppendWriteData(buf, data)
		rest := acks
		for range 3 {
			n, err := stm32.DecodeAck(stm32.CmdWrite, "data", 0x08004000, rest)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
		if len(buf) != 2+5+258 {
			b.Fatalf("frame of %d bytes, want %d", len(buf), 2+5+258)
		}
	}
}
