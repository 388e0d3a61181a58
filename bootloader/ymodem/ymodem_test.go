package ymodem_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/ymodem"
)

func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"123456789", 0x31C3},
		{"", 0},
		{"A", 0x58E5},
	}
	for _, tt := range tests {
		if got := ymodem.CRC16([]byte(tt.in)); got != tt.want {
			t.Errorf("CRC16(%q) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
}

func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// result collects what one side of a transfer ended with.
type result struct {
	files []ymodem.File
	data  []byte
	err   error
}

// transfer runs a sender and a receiver against each other over an
// in-memory line and returns both outcomes.
func transfer(t *testing.T, send func(context.Context, bootloader.Port) error, recv func(context.Context, bootloader.Port) result, setup func(toRecv, toSend *wire)) (got result, sendErr error) {
	t.Helper()
	a, b := portPair()
	if setup != nil {
		setup(a.out, b.out)
	}
	ctx := context.Background()
	done := make(chan result)
	go func() {
		r := recv(ctx, b)
		done <- r
	}()
	sendErr = send(ctx, a)
	got = <-done
	a.Close()
	return got, sendErr
}

func recvY(o ymodem.Options) func(context.Context, bootloader.Port) result {
	return func(ctx context.Context, p bootloader.Port) result {
		f, err := ymodem.Receive(ctx, p, o)
		return result{files: f, err: err}
	}
}

func sendY(files []ymodem.File, o ymodem.Options) func(context.Context, bootloader.Port) error {
	return func(ctx context.Context, p bootloader.Port) error { return ymodem.Send(ctx, p, files, o) }
}

func TestYMODEMRoundTrip(t *testing.T) {
	mtime := time.Unix(1700000000, 0)
	tests := []struct {
		name  string
		sizes []int
		bs    int
	}{
		{"empty file", []int{0}, 0},
		{"one byte", []int{1}, 0},
		{"exactly 128", []int{128}, 0},
		{"129 bytes", []int{129}, 0},
		{"exactly 1 KiB", []int{1024}, 0},
		{"1 KiB plus one", []int{1025}, 0},
		{"block numbers wrap past 255", []int{300 * 1024}, 0},
		{"128-byte blocks", []int{5000}, 128},
		{"batch of three", []int{10, 3000, 1024}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var files []ymodem.File
				for i, n := range tt.sizes {
					files = append(files, ymodem.File{Name: "f" + string(rune('a'+i)) + ".bin", ModTime: mtime, Mode: 0o100644, Data: payload(n, uint64(i))})
				}
				var last, total int64
				o := ymodem.Options{BlockSize: tt.bs, Progress: func(done, tot int64) {
					if done < last {
						t.Errorf("progress went back from %d to %d", last, done)
					}
					last, total = done, tot
				}}
				got, serr := transfer(t, sendY(files, o), recvY(ymodem.Options{}), nil)
				if serr != nil || got.err != nil {
					t.Fatalf("Send = %v, Receive = %v", serr, got.err)
				}
				if len(got.files) != len(files) {
					t.Fatalf("Receive returned %d files, want %d", len(got.files), len(files))
				}
				for i, f := range got.files {
					w := files[i]
					if f.Name != w.Name || f.Size != int64(len(w.Data)) || !f.ModTime.Equal(mtime) || f.Mode != 0o100644 {
						t.Errorf("file %d = %q size %d mtime %v mode %o, want %q size %d mtime %v mode %o", i, f.Name, f.Size, f.ModTime, f.Mode, w.Name, len(w.Data), mtime, w.Mode)
					}
					if !bytes.Equal(f.Data, w.Data) {
						t.Errorf("file %d: %d bytes received differ from the %d sent", i, len(f.Data), len(w.Data))
					}
				}
				var want int64
				for _, n := range tt.sizes {
					want += int64(n)
				}
				if want > 0 && (last != want || total != want) {
					t.Errorf("last progress = %d/%d, want %d/%d", last, total, want, want)
				}
			})
		})
	}
}

func TestXMODEMRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		n, bs    int
		checksum bool
		wantLen  int
	}{
		{"CRC 1K blocks", 3000, 0, false, 3072},
		{"CRC short tail in a 128-byte block", 2100, 0, false, 2176},
		{"checksum 128-byte blocks", 1000, 128, true, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				data := payload(tt.n, 7)
				got, serr := transfer(t,
					func(ctx context.Context, p bootloader.Port) error {
						return ymodem.SendXMODEM(ctx, p, data, ymodem.Options{BlockSize: tt.bs})
					},
					func(ctx context.Context, p bootloader.Port) result {
						d, err := ymodem.ReceiveXMODEM(ctx, p, ymodem.Options{Checksum: tt.checksum})
						return result{data: d, err: err}
					}, nil)
				if serr != nil || got.err != nil {
					t.Fatalf("SendXMODEM = %v, ReceiveXMODEM = %v", serr, got.err)
				}
				if len(got.data) != tt.wantLen || !bytes.Equal(got.data[:tt.n], data) {
					t.Fatalf("received %d bytes, want the %d sent padded to %d", len(got.data), tt.n, tt.wantLen)
				}
				for i, c := range got.data[tt.n:] {
					if c != ymodem.Pad {
						t.Fatalf("padding byte %d = %#x, want 0x1A", i, c)
					}
				}
			})
		})
	}
}

// TestImpairedLine runs transfers over a line that damages traffic and
// checks that the file still arrives intact, or that both sides fail as
// they should.
func TestImpairedLine(t *testing.T) {
	data := payload(10*1024+77, 3)
	files := []ymodem.File{{Name: "fw.bin", Data: data}}
	blockStart := func(k int) int64 { return 133 + int64(k-1)*1029 } // offset of data block k on the sender's wire
	tests := []struct {
		name    string
		setup   func(toRecv, toSend *wire, hit func())
		ropt    ymodem.Options
		wantErr error // from both sides; nil: the file must arrive
	}{
		{"a byte of block 3 flipped", func(toRecv, _ *wire, hit func()) {
			at := blockStart(3) + 500
			toRecv.mangle = func(off int64, b byte) (byte, bool) {
				if off == at {
					hit()
					return b ^ 0x40, false
				}
				return b, false
			}
		}, ymodem.Options{}, nil},
		{"block 2's number garbled", func(toRecv, _ *wire, hit func()) {
			at := blockStart(2) + 2
			toRecv.mangle = func(off int64, b byte) (byte, bool) {
				if off == at {
					hit()
					return b ^ 1, false
				}
				return b, false
			}
		}, ymodem.Options{}, nil},
		{"bytes of block 4 lost", func(toRecv, _ *wire, hit func()) {
			at := blockStart(4) + 100
			toRecv.mangle = func(off int64, b byte) (byte, bool) {
				if off == at {
					hit()
				}
				return b, off >= at && off < at+10
			}
		}, ymodem.Options{CharTimeout: 200 * time.Millisecond}, nil},
		{"the ACK of block 5 lost: the receiver drops the repeat", func(_, toSend *wire, hit func()) {
			acks := 0
			toSend.mangle = func(off int64, b byte) (byte, bool) {
				if b == ymodem.ACK {
					acks++
					if acks == 6 { // block 0's ACK is the first
						hit()
						return b, true
					}
				}
				return b, false
			}
		}, ymodem.Options{}, nil},
		{"noise and repeated C before the start", func(_, toSend *wire, hit func()) {
			toSend.write([]byte("U-Boot> \x00\xffCCCC"))
			hit()
		}, ymodem.Options{}, nil},
		{"the receiver NAKs the first EOT", func(_, toSend *wire, hit func()) {
			toSend.mangle = func(off int64, b byte) (byte, bool) {
				if b == ymodem.NAK {
					hit()
				}
				return b, false
			}
		}, ymodem.Options{NAKFirstEOT: true}, nil},
		{"the receiver's line is dead", func(_, toSend *wire, hit func()) {
			hit()
			toSend.mangle = func(int64, byte) (byte, bool) { return 0, true }
		}, ymodem.Options{StartTimeout: 5 * time.Second}, os.ErrDeadlineExceeded},
		{"every block damaged", func(toRecv, _ *wire, hit func()) {
			toRecv.mangle = func(off int64, b byte) (byte, bool) {
				if off > 140 && off%1029 == 600 {
					hit()
					return ^b, false
				}
				return b, false
			}
		}, ymodem.Options{}, ymodem.ErrRetries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				so := ymodem.Options{StartTimeout: 10 * time.Second}
				var hits atomic.Int32
				setup := func(toRecv, toSend *wire) { tt.setup(toRecv, toSend, func() { hits.Add(1) }) }
				got, serr := transfer(t, sendY(files, so), recvY(tt.ropt), setup)
				if hits.Load() == 0 {
					t.Fatal("the impairment never happened")
				}
				if tt.wantErr == nil {
					if serr != nil || got.err != nil {
						t.Fatalf("Send = %v, Receive = %v; want both to succeed", serr, got.err)
					}
					if len(got.files) != 1 || !bytes.Equal(got.files[0].Data, data) {
						t.Fatalf("received %d files; the data differs from what was sent", len(got.files))
					}
					return
				}
				if !errors.Is(serr, tt.wantErr) && !errors.Is(got.err, tt.wantErr) {
					t.Fatalf("Send = %v, Receive = %v; want %v from one of them", serr, got.err, tt.wantErr)
				}
				if serr == nil || got.err == nil {
					t.Fatalf("Send = %v, Receive = %v; want both to fail", serr, got.err)
				}
			})
		})
	}
}

func TestCancel(t *testing.T) {
	data := payload(8000, 1)
	t.Run("the receiver cancels", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := portPair()
			ctx := context.Background()
			errc := make(chan error)
			go func() { errc <- ymodem.Send(ctx, a, []ymodem.File{{Name: "x", Data: data}}, ymodem.Options{}) }()
			b.Write([]byte{'C'})
			buf := make([]byte, 200)
			b.SetReadTimeout(time.Second)
			b.Read(buf)
			b.Write([]byte{ymodem.CAN, ymodem.CAN})
			err := <-errc
			if !errors.Is(err, ymodem.ErrCancelled) {
				t.Fatalf("Send = %v, want ErrCancelled", err)
			}
			var pe *ymodem.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Send = %T, want *ProtocolError", err)
			}
		})
	})
	t.Run("the sender gives up and cancels", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := portPair()
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error)
			// The receiver's ACK of block 0 is lost for ever: the sender
			// retries, then cancels, and the receiver sees the CANs.
			b.out.mangle = func(off int64, c byte) (byte, bool) { return c, c == ymodem.ACK }
			go func() {
				errc <- ymodem.Send(ctx, a, []ymodem.File{{Name: "x", Data: data}}, ymodem.Options{Retries: 2, Timeout: time.Second})
			}()
			_, rerr := ymodem.Receive(ctx, b, ymodem.Options{})
			serr := <-errc
			cancel()
			if !errors.Is(serr, ymodem.ErrRetries) {
				t.Errorf("Send = %v, want ErrRetries", serr)
			}
			if !errors.Is(rerr, ymodem.ErrCancelled) {
				t.Errorf("Receive = %v, want ErrCancelled", rerr)
			}
		})
	})
	t.Run("a wrong block number cancels", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := portPair()
			ctx := context.Background()
			errc := make(chan error)
			go func() {
				_, err := ymodem.Receive(ctx, b, ymodem.Options{})
				errc <- err
			}()
			a.SetReadTimeout(time.Second)
			buf := make([]byte, 16)
			a.Read(buf) // C
			hdr := append([]byte("x\x00100"), make([]byte, 128-5)...)
			a.Write(block(0, hdr))
			a.Read(buf) // ACK C
			a.Write(block(3, make([]byte, 128)))
			err := <-errc
			if !errors.Is(err, ymodem.ErrSequence) {
				t.Fatalf("Receive = %v, want ErrSequence", err)
			}
			var all []byte
			for {
				n, _ := a.Read(buf)
				if n == 0 {
					break
				}
				all = append(all, buf[:n]...)
			}
			if !bytes.Contains(all, []byte{ymodem.CAN, ymodem.CAN}) {
				t.Fatalf("the receiver sent %q after the bad block, want CAN CAN", all)
			}
		})
	})
}

// block frames a 128-byte CRC block, for tests that play the sender.
func block(n byte, data []byte) []byte {
	b := []byte{ymodem.SOH, n, ^n}
	b = append(b, data...)
	c := ymodem.CRC16(data)
	return append(b, byte(c>>8), byte(c))
}
