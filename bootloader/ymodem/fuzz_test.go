package ymodem_test

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader/ymodem"
)

// frame is a well-formed block found in a byte stream.
type frame struct {
	n    byte
	data []byte
}

// validFrames returns every well-formed block anywhere in stream: the only
// blocks a strict receiver may accept.
func validFrames(stream []byte, crc bool) []frame {
	var fs []frame
	check := 2
	if !crc {
		check = 1
	}
	for i, c := range stream {
		size := 0
		switch c {
		case ymodem.SOH:
			size = 128
		case ymodem.STX:
			size = 1024
		default:
			continue
		}
		if i+3+size+check > len(stream) {
			continue
		}
		n, cn := stream[i+1], stream[i+2]
		data := stream[i+3 : i+3+size]
		tail := stream[i+3+size : i+3+size+check]
		if n != ^cn {
			continue
		}
		if crc && ymodem.CRC16(data) != uint16(tail[0])<<8|uint16(tail[1]) {
			continue
		}
		if !crc && ymodem.Checksum(data) != tail[0] {
			continue
		}
		fs = append(fs, frame{n, data})
	}
	return fs
}

// covered reports whether data is the concatenation of well-formed blocks
// numbered from k on (mod 256), the last one possibly cut short.
func covered(data []byte, fs []frame, k byte, depth int) bool {
	if len(data) == 0 {
		return true
	}
	if depth > 4096 {
		return false
	}
	for _, f := range fs {
		if f.n != k {
			continue
		}
		if len(data) <= len(f.data) && bytes.Equal(data, f.data[:len(data)]) {
			return true
		}
		if len(data) > len(f.data) && bytes.Equal(data[:len(f.data)], f.data) && covered(data[len(f.data):], fs, k+1, depth+1) {
			return true
		}
	}
	return false
}

// validStream is what a sender puts on the wire for files when the
// receiver answers every block with ACK: a seed for the fuzzers.
func validStream(files []ymodem.File) []byte {
	a, b := portPair()
	ctx := context.Background()
	done := make(chan struct{})
	var wire bytes.Buffer
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		b.Write([]byte{'C'})
		b.SetReadTimeout(200 * time.Millisecond)
		for {
			n, err := b.Read(buf)
			if n == 0 || err != nil {
				return
			}
			wire.Write(buf[:n])
			// Answer the way U-Boot does: ACK each block, ACK ACK C after
			// EOT.
			if buf[0] == ymodem.EOT {
				b.Write([]byte{ymodem.ACK, ymodem.ACK, 'C'})
			} else {
				b.Write([]byte{ymodem.ACK})
			}
		}
	}()
	ymodem.Send(ctx, a, files, ymodem.Options{Timeout: time.Second, DataStartWait: -1})
	a.Close()
	<-done
	return wire.Bytes()
}

// FuzzReceive feeds the YMODEM and XMODEM receivers arbitrary byte streams
// from a sender that ignores their answers. They must return (never panic
// or hang), and whatever they accept must be made of well-formed blocks of
// the stream in sequence.
func FuzzReceive(f *testing.F) {
	var seeds [][]byte
	seeds = append(seeds,
		validStream([]ymodem.File{{Name: "a.bin", Data: payload(3000, 1)}}),
		validStream([]ymodem.File{{Name: "b", Data: payload(100, 2)}, {Name: "c", Data: nil}}),
		[]byte{ymodem.CAN, ymodem.CAN},
		[]byte{ymodem.EOT, ymodem.EOT},
		[]byte("\x01\x00\xffgarbage"),
	)
	for _, s := range seeds {
		f.Add(s, byte(0))
		f.Add(s, byte(1))
		f.Add(s, byte(2))
	}
	f.Fuzz(func(t *testing.T, stream []byte, mode byte) {
		p := &streamPort{data: append([]byte(nil), stream...), chunk: 1 + int(mode>>2)}
		o := ymodem.Options{Retries: 3, MaxSize: 1 << 20}
		ctx := context.Background()
		switch mode % 3 {
		case 0:
			files, _ := ymodem.Receive(ctx, p, o)
			fs := validFrames(stream, true)
			for _, file := range files {
				if !covered(file.Data, fs, 1, 0) {
					t.Fatalf("Receive accepted %q (%d bytes) that is not made of well-formed blocks", file.Name, len(file.Data))
				}
				if file.Size >= 0 && int64(len(file.Data)) > file.Size {
					t.Fatalf("Receive returned %d bytes for a file of size %d", len(file.Data), file.Size)
				}
				named := false
				for _, fr := range fs {
					named = named || (fr.n == 0 && bytes.HasPrefix(fr.data, append([]byte(file.Name), 0)))
				}
				if !named {
					t.Fatalf("Receive named a file %q that no well-formed block 0 carries", file.Name)
				}
			}
		case 1, 2:
			o.Checksum = mode%3 == 2
			data, _ := ymodem.ReceiveXMODEM(ctx, p, o)
			if !covered(data, validFrames(stream, !o.Checksum), 1, 0) {
				t.Fatalf("ReceiveXMODEM accepted %d bytes that are not made of well-formed blocks", len(data))
			}
		}
	})
}

// FuzzRoundTrip sends arbitrary data from the sender to the receiver over
// an in-memory line and checks it arrives byte for byte.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, "x", false)
	f.Add(payload(1025, 1), "firmware.bin", false)
	f.Add(payload(2000, 2), "a", true)
	f.Fuzz(func(t *testing.T, data []byte, name string, small bool) {
		if name == "" || bytes.IndexByte([]byte(name), 0) >= 0 || len(name) > 900 {
			t.Skip()
		}
		bs := 0
		if small {
			bs = 128
		}
		synctest.Test(t, func(t *testing.T) {
			files := []ymodem.File{{Name: name, Data: data}}
			got, serr := transfer(t, sendY(files, ymodem.Options{BlockSize: bs}), recvY(ymodem.Options{}), nil)
			if serr != nil || got.err != nil {
				t.Fatalf("Send = %v, Receive = %v", serr, got.err)
			}
			if len(got.files) != 1 || got.files[0].Name != name || !bytes.Equal(got.files[0].Data, data) {
				t.Fatalf("received %d files; want %q with the %d bytes sent", len(got.files), name, len(data))
			}
		})
	})
}
