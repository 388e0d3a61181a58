package stm32_test

import (
	"context"
	"testing"
	"time"

	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// BenchmarkWriteVerify256K erases, writes and verifies a 256 KiB image
// (sectors 0 to 5) in the STM32F407 model over a paced line at 115200 8E1
// (11 bit times a byte) with a 1 ms turnaround, on the real clock. The
// modelled erase (2.55 s) and programming time are part of both the
// measurement and the minimum it is held against.
func BenchmarkWriteVerify256K(b *testing.B) {
	for _, tc := range []struct {
		name   string
		sparse bool
	}{{"dense", false}, {"half-FF", true}} {
		b.Run(tc.name, func(b *testing.B) { benchWriteVerify(b, tc.sparse) })
	}
}

// benchWriteVerify runs the benchmark; sparse makes every other 256-byte
// block of the image 0xFF. The minimum stays the dense one (what a client
// that sends every block needs), so x-min below 1 is the time saved.
func benchWriteVerify(b *testing.B, sparse bool) {
	const (
		part       = "stm32f407"
		size       = 256 << 10
		baud       = 115200
		turnaround = time.Millisecond
	)
	m, err := stm32sim.New(part, stm32sim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	img, err := stm32sim.AppImage(part, "2.0", "bench", size)
	if err != nil {
		b.Fatal(err)
	}
	if sparse {
		for i := range img {
			if i/stm32.MaxBlock%2 == 1 {
				img[i] = 0xFF
			}
		}
	}
	host, pd := sim.Pipe()
	host.SetBaud(baud)
	cfg := stm32sim.LineConfig() // the ROM autobauds: it follows the host's 115200
	cfg.Turnaround = turnaround
	line := sim.NewLine(cfg)
	line.Attach(pd)
	d := sim.NewDevice(part, m, line)
	defer d.Close()
	d.SetBoot(true)
	d.SetPower(true)
	c := stm32.New(host, stm32.Options{Baud: baud, BitsPerByte: cfg.BitsPerByte})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	info, err := c.Identify(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p := info.Part
	var minimum time.Duration
	b.ResetTimer()
	for range b.N {
		if err := c.EraseRegion(ctx, p, p.FlashBase, size); err != nil {
			b.Fatal(err)
		}
		if err := c.WriteMemory(ctx, p.FlashBase, img, nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Verify(ctx, p.FlashBase, img, nil); err != nil {
			b.Fatal(err)
		}
		minimum += protocolMinimum(p, m.Timing(), size, baud, cfg.BitsPerByte, turnaround)
	}
	elapsed := b.Elapsed()
	b.ReportMetric(minimum.Seconds()/float64(b.N), "min-s")
	b.ReportMetric(elapsed.Seconds()/minimum.Seconds(), "x-min")
	b.ReportMetric(float64(size)*float64(b.N)/1024/elapsed.Seconds(), "KiB/s")
}

// protocolMinimum is the least time AN3155 needs to erase the units n bytes
// from the start of flash cover, write them and read them back over this
// link, stop-and-wait as the ROM requires: every byte that crosses the wire
// either way at bits bit times, one turnaround per answer the host must
// wait for, and the unit's modelled erase and programming time.
//
//	EXTENDED ERASE: 44 BB -> 79; N-1 (2), k sector numbers (2 each), XOR -> 79
//	WRITE per block: 31 CE -> 79; address (5) -> 79; N-1, data, XOR -> 79
//	READ per block:  11 EE -> 79; address (5) -> 79; N-1, ~(N-1) -> 79 + data
func protocolMinimum(p stm32.Part, t stm32sim.FlashTiming, n, baud, bits int, turnaround time.Duration) time.Duration {
	var bytes, answers int
	var busy time.Duration
	exchange := func(out, in int) { bytes += out + in; answers++ }
	units, _ := p.UnitsIn(p.FlashBase, uint32(n))
	exchange(2, 1)
	exchange(2+2*len(units)+1, 1)
	for _, u := range units {
		r, _ := p.Unit(u)
		busy += t.EraseTime(r.Size)
	}
	for off := 0; off < n; off += stm32.MaxBlock {
		k := (min(stm32.MaxBlock, n-off) + 3) &^ 3
		exchange(2, 1)
		exchange(5, 1)
		exchange(1+k+1, 1)
		busy += t.ProgramTime(k)
	}
	for off := 0; off < n; off += stm32.MaxBlock {
		k := min(stm32.MaxBlock, n-off)
		exchange(2, 1)
		exchange(5, 1)
		exchange(2, 1+k)
	}
	byteTime := time.Duration(bits) * time.Second / time.Duration(baud)
	return time.Duration(bytes)*byteTime + time.Duration(answers)*turnaround + busy
}
