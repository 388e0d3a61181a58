package serialport

import (
	"testing"
	"time"
)

// BenchmarkPTYExchange measures one stop-and-wait exchange (a byte out, a
// byte back) through a Port on a pseudo-terminal, the floor under every
// bootloader command on the virtual bench; a real FTDI adapter adds its
// latency timer (1 ms once Open has set it, 16 ms by default).
func BenchmarkPTYExchange(b *testing.B) {
	master, dev := newPTY(b)
	p, err := Open(dev, Mode{Baud: 115200})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.SetReadTimeout(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := master.Read(buf)
			if err != nil {
				return
			}
			if _, err := master.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	one := []byte{0x7f}
	buf := make([]byte, 1)
	start := time.Now()
	for b.Loop() {
		if _, err := p.Write(one); err != nil {
			b.Fatal(err)
		}
		if n, err := p.Read(buf); n != 1 || err != nil {
			b.Fatalf("Read = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exchanges/s")
}
