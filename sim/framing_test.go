package sim

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"

	"go.bug.st/serial"
)

func TestReframe(t *testing.T) {
	tests := []struct {
		name     string
		from, to Framing
		in       []byte
		want     []byte // the bytes sampled without error
		bad      int
	}{
		{"same framing", Framing8E1, Framing8E1, []byte{0x00, 0xFF, 0x11, 0xEE}, []byte{0x00, 0xFF, 0x11, 0xEE}, 0},
		{"8N1 host, sync byte alone", Framing8N1, Framing8E1, []byte{0x7F}, []byte{0x7F}, 0},
		{"8E1 unit, ACK alone", Framing8E1, Framing8N1, []byte{0x79}, []byte{0x79}, 0},
		{"8E1 unit, NACK alone", Framing8E1, Framing8N1, []byte{0x1F}, []byte{0x1F}, 0},
		// 00 needs a 0 parity bit and gets the host's stop bit; FF's start
		// bit is eaten as 00's stop bit, so FF never starts.
		{"8N1 host, GET", Framing8N1, Framing8E1, []byte{0x00, 0xFF}, nil, 1},
		{"8N1 host, odd parity", Framing8N1, Framing{Parity: ParityOdd}, []byte{0x7F}, nil, 1},
		// 00 at 8E1 has a 0 parity bit where an 8N1 UART wants its stop bit.
		{"8E1 host, 8N1 unit", Framing8E1, Framing8N1, []byte{0x00}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			bad := 0
			for _, r := range reframe(tt.in, tt.from, tt.to) {
				if r.bad {
					bad++
					continue
				}
				got = append(got, r.b)
			}
			if !bytes.Equal(got, tt.want) || bad != tt.bad {
				t.Errorf("reframe(% X, %v, %v) = % X with %d errors, want % X with %d", tt.in, tt.from, tt.to, got, bad, tt.want, tt.bad)
			}
		})
	}
}

// TestLineParity: a unit at 8E1 behind an in-memory link receives a host
// that declared even parity unharmed, and a host at 8N1 as a real UART
// would: 7F passes, GET's 00 FF does not.
func TestLineParity(t *testing.T) {
	for _, tt := range []struct {
		parity string
		want   string // what the echo model answers to 7F, then 00 FF
	}{
		{"even", "\x80\x01\x00"},
		{"none", "\x80"},
	} {
		t.Run(tt.parity, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host, dev := Pipe()
				if err := host.SetParity(tt.parity); err != nil {
					t.Fatal(err)
				}
				line := NewLine(LineConfig{Fast: true, Framing: Framing8E1})
				line.Attach(dev)
				d := NewDevice("u1", echo{}, line)
				defer d.Close()
				d.SetBoot(true)
				d.SetPower(true)
				readQuiet(t, host) // "boot\n", in whatever shape it arrived
				host.Write([]byte{0x7F})
				synctest.Wait()
				host.Write([]byte{0x00, 0xFF})
				time.Sleep(time.Second) // fake time: let every byte cross
				got := readQuiet(t, host)
				if string(got) != tt.want {
					t.Errorf("host at %s: echo = % X, want % X", tt.parity, got, tt.want)
				}
				if st := line.Stats(); (st.RxErrors > 0) != (tt.parity == "none") {
					t.Errorf("host at %s: Stats() = %+v", tt.parity, st)
				}
			})
		})
	}
}

func readQuiet(t *testing.T, h *PipeHost) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 64)
	h.SetReadTimeout(100 * time.Millisecond)
	for {
		n, _ := h.Read(buf)
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}

// TestPTYHostLine: what the unit's end of a pseudo-terminal sees of the
// parity a host asks for through go.bug.st/serial, although the kernel
// drops PARENB.
func TestPTYHostLine(t *testing.T) {
	for _, tt := range []struct {
		parity serial.Parity
		want   Framing
	}{
		{serial.NoParity, Framing8N1},
		{serial.EvenParity, Framing8E1},
		{serial.OddParity, Framing{Parity: ParityOdd}},
	} {
		p, err := OpenPTY("")
		if err != nil {
			t.Fatal(err)
		}
		port, err := serial.Open(p.Device(), &serial.Mode{BaudRate: 115200, Parity: tt.parity})
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		h, ok, err := p.HostLine()
		port.Close()
		p.Close()
		if err != nil || !ok || h.Framing != tt.want || h.Check != (tt.want.Parity != ParityNone) {
			t.Errorf("parity %v: HostLine() = %+v, %v, %v; want %v", tt.parity, h, ok, err, tt.want)
		}
	}
}
