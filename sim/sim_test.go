package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"go.bug.st/serial"
)

// echo is a model that answers every byte it receives with the byte plus one,
// and says hello at reset with the strap level it saw.
type echo struct{}

func (echo) Run(s *Session) {
	if s.Boot {
		s.Print("boot\n")
	} else {
		s.Print("app\n")
	}
	var b [64]byte
	for {
		n, err := s.Read(b[:])
		if err != nil {
			return
		}
		for i := range n {
			b[i]++
		}
		if _, err := s.Write(b[:n]); err != nil {
			return
		}
	}
}

// block answers each block of 100 bytes with the block, each byte plus one.
type block struct{}

func (block) Run(s *Session) {
	b := make([]byte, 100)
	for {
		if err := s.ReadFull(b); err != nil {
			return
		}
		for i := range b {
			b[i]++
		}
		if _, err := s.Write(b); err != nil {
			return
		}
	}
}

func readN(t *testing.T, h *PipeHost, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(out) < n {
		m, err := h.Read(buf[:n-len(out)])
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(out), n, err)
		}
		if m == 0 {
			t.Fatalf("read timed out after %d of %d bytes: %q", len(out), n, out)
		}
		out = append(out, buf[:m]...)
	}
	return out
}

func TestDeviceStrapAndPower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, dev := Pipe()
		host.SetReadTimeout(time.Second)
		line := NewLine(LineConfig{Fast: true})
		line.Attach(dev)
		d := NewDevice("u1", echo{}, line)
		defer d.Close()

		// Bytes sent to an unpowered unit are lost.
		host.Write([]byte{1, 2, 3})
		synctest.Wait()

		d.SetBoot(true)
		d.SetPower(true)
		if got := readN(t, host, 5); string(got) != "boot\n" {
			t.Fatalf("first boot printed %q, want %q", got, "boot\n")
		}
		host.Write([]byte{10})
		if got := readN(t, host, 1); got[0] != 11 {
			t.Fatalf("echo = %d, want 11", got[0])
		}
		// Reset with the strap released starts the application.
		d.SetBoot(false)
		d.SetReset(true)
		d.SetReset(false)
		if got := readN(t, host, 4); string(got) != "app\n" {
			t.Fatalf("after reset printed %q, want %q", got, "app\n")
		}
		d.SetPower(false)
		boots := d.Boots()
		if len(boots) != 2 || boots[0].Cause != PowerOn || !boots[0].Strap || boots[1].Cause != External || boots[1].Strap {
			t.Fatalf("boots = %+v", boots)
		}
		// Nothing more arrives: the earlier bytes to the unpowered unit were dropped.
		host.SetReadTimeout(100 * time.Millisecond)
		var b [8]byte
		if n, _ := host.Read(b[:]); n != 0 {
			t.Fatalf("unexpected bytes %v", b[:n])
		}
	})
}

func TestLinePacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, dev := Pipe()
		host.SetReadTimeout(10 * time.Second)
		cfg := LineConfig{Baud: 9600, Turnaround: 16 * time.Millisecond}
		line := NewLine(cfg)
		line.Attach(dev)
		d := NewDevice("u1", block{}, line)
		defer d.Close()
		d.SetPower(true)
		start := time.Now()
		host.Write(make([]byte, 100))
		readN(t, host, 100)
		// 100 bytes in, turnaround, 100 bytes out.
		want := 200*time.Second*10/9600 + 16*time.Millisecond
		if got := time.Since(start); got < want-time.Microsecond || got > want+2*time.Millisecond {
			t.Errorf("100-byte echo took %v, want %v", got, want)
		}
		if st := line.Stats(); st.RxBytes != 100 || st.TxBytes != 100 || st.Replies != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestLineBaudMismatchGarbles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, dev := Pipe()
		host.SetReadTimeout(time.Second)
		host.SetBaud(9600)
		line := NewLine(LineConfig{Baud: 115200, Fast: true})
		line.Attach(dev)
		d := NewDevice("u1", echo{}, line)
		defer d.Close()
		d.SetPower(true)
		if got := readN(t, host, 4); string(got) == "app\n" {
			t.Fatalf("banner at 115200 read at 9600 came through clean")
		}
		host.SetBaud(115200)
		host.Write([]byte{1})
		if got := readN(t, host, 1); got[0] != 2 {
			t.Fatalf("matched rates: echo = %d, want 2", got[0])
		}
	})
}

func TestPTYWithSerialPort(t *testing.T) {
	link := t.TempDir() + "/ttyUSB0"
	p, err := OpenPTY(link)
	if err != nil {
		t.Fatal(err)
	}
	line := NewLine(LineConfig{Fast: true})
	line.Attach(p)
	d := NewDevice("u1", echo{}, line)
	defer d.Close()

	port, err := serial.Open(link, &serial.Mode{BaudRate: 57600})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	if b, err := p.HostBaud(); err != nil || b != 57600 {
		t.Fatalf("HostBaud() = %d, %v; want 57600", b, err)
	}
	d.SetPower(true)
	port.SetReadTimeout(5 * time.Second)
	got := make([]byte, 0, 8)
	buf := make([]byte, 8)
	for len(got) < 4 {
		n, err := port.Read(buf)
		if err != nil || n == 0 {
			t.Fatalf("read = %d, %v after %q", n, err, got)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "app\n" {
		t.Fatalf("banner = %q", got)
	}
	port.Write([]byte("abc"))
	got = got[:0]
	for len(got) < 3 {
		n, err := port.Read(buf)
		if err != nil || n == 0 {
			t.Fatalf("read = %d, %v after %q", n, err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, []byte("bcd")) {
		t.Fatalf("echo = %q", got)
	}
	// Unplugging closes the port under the host.
	line.Detach()
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link still there after detach: %v", err)
	}
	for {
		n, err := port.Read(buf)
		if err != nil {
			break
		}
		if n == 0 {
			t.Fatal("read after unplug timed out instead of failing")
		}
	}
	_ = io.EOF
	_ = context.Background
}

func TestFlashSemantics(t *testing.T) {
	f := NewFlash(0x08000000, Uniform(4, 1024))
	if b, _ := f.Read(0x08000000, 2); !bytes.Equal(b, []byte{0xFF, 0xFF}) {
		t.Fatalf("erased flash reads %x", b)
	}
	if clean, err := f.Program(0x08000000, []byte{0x0F, 0xF0}); !clean || err != nil {
		t.Fatalf("program erased = %v, %v", clean, err)
	}
	// Programming over data can only clear bits.
	if clean, _ := f.Program(0x08000000, []byte{0xF0, 0xFF}); clean {
		t.Fatal("program over data reported clean")
	}
	if b, _ := f.Read(0x08000000, 2); !bytes.Equal(b, []byte{0x00, 0xF0}) {
		t.Fatalf("after overwrite flash reads %x, want 00f0", b)
	}
	if n, err := f.EraseRange(Region{0x08000000 + 1000, 100}); n != 2 || err != nil {
		t.Fatalf("EraseRange across a page boundary = %d, %v; want 2 pages", n, err)
	}
	if b, _ := f.Read(0x08000000, 2); !bytes.Equal(b, []byte{0xFF, 0xFF}) {
		t.Fatalf("erased page reads %x", b)
	}
	if _, err := f.Program(0x08000000+4096-1, []byte{1, 2}); err == nil {
		t.Fatal("program past the end succeeded")
	}
	if i, ok := f.UnitAt(0x08000000 + 2048); !ok || i != 2 {
		t.Fatalf("UnitAt = %d, %v", i, ok)
	}
}
