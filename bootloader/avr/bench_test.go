package avr_test

import (
	"context"
	"testing"
	"time"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
)

// BenchmarkWriteVerify256K writes and verifies the whole application space
// of an ATmega2560 (256 KiB of flash less optiboot's 1 KiB: 255 KiB, 1020
// pages of 256 bytes, across both 128 KiB halves, so extended addressing
// is exercised) over a paced line at 115200 8N1 with a 1 ms turnaround, on
// the real clock.
func BenchmarkWriteVerify256K(b *testing.B) { benchImages(b, "atmega2560") }

// BenchmarkWriteVerify32K does the same for an ATmega328P (31.5 KiB, 252
// pages of 128 bytes).
func BenchmarkWriteVerify32K(b *testing.B) { benchImages(b, "atmega328p") }

// benchImages runs a dense image and one whose odd pages are all 0xFF
// (into a blank unit). The minimum stays the dense one, what a client that
// writes every page needs, so x-min below 1 is the time saved.
func benchImages(b *testing.B, part string) {
	b.Run("dense", func(b *testing.B) { benchWriteVerify(b, part, false) })
	b.Run("half-FF", func(b *testing.B) { benchWriteVerify(b, part, true) })
}

func benchWriteVerify(b *testing.B, part string, sparse bool) {
	const baud = 115200
	const turnaround = time.Millisecond
	m, err := avrsim.New(part, avrsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := m.Part()
	img, err := avrsim.AppImage(part, "2.0", "bench", p.BootStart())
	if err != nil {
		b.Fatal(err)
	}
	if sparse {
		for i := range img {
			if i/p.PageSize%2 == 1 {
				img[i] = 0xFF
			}
		}
	}
	host, pd := sim.Pipe()
	host.SetBaud(baud)
	line := sim.NewLine(sim.LineConfig{Baud: baud, Turnaround: turnaround})
	line.Attach(pd)
	d := sim.NewDevice(part, m, line)
	defer d.Close()
	d.SetPower(true)
	c := avr.New(host, avr.Options{Reset: func(context.Context) error {
		d.SetReset(true)
		d.SetReset(false)
		return nil
	}})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Identify(ctx); err != nil {
		b.Fatal(err)
	}
	ext := -1 // the client's extended address after Identify: unknown
	var minimum time.Duration
	b.ResetTimer()
	for range b.N {
		if err := c.WritePages(ctx, 0, img, nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Verify(ctx, 0, img, nil); err != nil {
			b.Fatal(err)
		}
		minimum += protocolMinimum(p, len(img), &ext, baud, turnaround)
	}
	elapsed := b.Elapsed()
	b.ReportMetric(minimum.Seconds()/float64(b.N), "min-s")
	b.ReportMetric(elapsed.Seconds()/minimum.Seconds(), "x-min")
	b.ReportMetric(float64(len(img))*float64(b.N)/1024/elapsed.Seconds(), "KiB/s")
}

// protocolMinimum is the least time the protocol needs to write and verify
// n bytes from address 0 on this link, stop-and-wait as optiboot requires:
// every byte both ways at 10 bit times, one turnaround per awaited answer,
// and the modelled erase and write of each page. The command plan is the
// client's (and avrdude's): per page LOAD_ADDRESS + PROG_PAGE, then per
// page LOAD_ADDRESS + READ_PAGE, with Load Extended Address whenever the
// high address bits change (or may have, after a read up to a 128 KiB
// boundary).
func protocolMinimum(p avr.Part, n int, ext *int, baud int, turnaround time.Duration) time.Duration {
	var bytes, answers int
	var busy time.Duration
	exchange := func(out, in int) { bytes += out + in; answers++ }
	load := func(word int) {
		if p.ExtendedAddressing() && word>>16 != *ext {
			exchange(6, 3) // 56 4D 00 ext 00 20 -> 14 00 10
			*ext = word >> 16
		}
		exchange(4, 2) // 55 lo hi 20 -> 14 10
	}
	ps := p.PageSize
	for off := 0; off < n; off += ps {
		load(off / 2)
		exchange(4+ps+1, 2) // 64 hi lo 46 data 20 -> 14 .. 10
		busy += avrsim.PageEraseTime + avrsim.PageWriteTime
	}
	for off := 0; off < n; off += ps {
		k := min(ps, n-off)
		load(off / 2)
		exchange(5, k+2) // 74 hi lo 46 20 -> 14 data 10
		if p.ExtendedAddressing() && (off+k)>>17 != off>>17 {
			*ext = -1
		}
	}
	byteTime := 10 * time.Second / time.Duration(baud)
	return time.Duration(bytes)*byteTime + time.Duration(answers)*turnaround + busy
}
