package esprom_test

import (
	"context"
	"testing"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// BenchmarkWriteVerify256K writes a 256 KiB image into the ESP32 model
// compressed (FLASH_DEFL_*) and verifies it with SPI_FLASH_MD5, over a
// paced line at 115200 8N1 with a 1 ms turnaround, on the real clock. The
// modelled erase (four 64 KiB blocks, 0.6 s), programming (0.7 ms a page)
// and hashing are part of both the measurement and the minimum it is held
// against. The demo image is pseudo-random, so compression gains nothing:
// the stream is the image plus zlib's framing.
func BenchmarkWriteVerify256K(b *testing.B) { benchWriteVerify(b, 115200) }

// BenchmarkWriteVerify256K921600 is the same after CHANGE_BAUDRATE to
// 921600, as the station runs an ESP32: the wire time shrinks eightfold,
// the ROM's erase and programming, stop-and-wait, do not.
func BenchmarkWriteVerify256K921600(b *testing.B) { benchWriteVerify(b, 921600) }

func benchWriteVerify(b *testing.B, baud int) {
	const (
		size       = 256 << 10
		offset     = 0x10000
		turnaround = time.Millisecond
	)
	m, err := espsim.New("esp32", espsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	img, err := espsim.AppImage("esp32", "2.0", "bench", size)
	if err != nil {
		b.Fatal(err)
	}
	host, pd := sim.Pipe()
	host.SetBaud(115200)
	cfg := espsim.LineConfig()
	cfg.Turnaround = turnaround
	line := sim.NewLine(cfg)
	line.Attach(pd)
	d := sim.NewDevice("esp32", m, line)
	defer d.Close()
	d.SetBoot(true)
	d.SetPower(true)
	c := esprom.New(host, esprom.Options{Baud: 115200})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Identify(ctx); err != nil {
		b.Fatal(err)
	}
	if baud != 115200 {
		if err := c.ChangeBaud(ctx, baud); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.SPIAttach(ctx); err != nil {
		b.Fatal(err)
	}
	var minimum time.Duration
	b.ResetTimer()
	for range b.N {
		if _, err := c.Flash(ctx, offset, img, esprom.FlashOptions{Compress: true}, nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Verify(ctx, offset, img); err != nil {
			b.Fatal(err)
		}
		minimum += protocolMinimum(m.Timing(), offset, img, baud, turnaround)
	}
	elapsed := b.Elapsed()
	b.ReportMetric(minimum.Seconds()/float64(b.N), "min-s")
	b.ReportMetric(elapsed.Seconds()/minimum.Seconds(), "x-min")
	b.ReportMetric(float64(size)*float64(b.N)/1024/elapsed.Seconds(), "KiB/s")
}

// protocolMinimum is the least time the ESP32 ROM protocol needs to write
// img compressed at offset and verify it over this link, stop-and-wait as
// the ROM requires: every SLIP-framed byte both ways at 10 bit times, one
// turnaround per answer, and the unit's modelled erase, programming and
// hashing. Responses carry 4 status bytes.
//
//	FLASH_DEFL_BEGIN: 16 bytes of parameters -> status (the ROM erases)
//	FLASH_DEFL_DATA per 1 KiB of the zlib stream: 16-byte header + block -> status
//	SPI_FLASH_MD5: 16 bytes -> 32 hex digits + status (the ROM hashes)
func protocolMinimum(t espsim.Timing, offset uint32, img []byte, baud int, turnaround time.Duration) time.Duration {
	var bytes, answers int
	exchange := func(req []byte, respData int) {
		bytes += esprom.SLIPLen(esprom.AppendRequest(nil, 0, 0, req))
		bytes += esprom.SLIPLen(esprom.AppendResponse(nil, 0, 0, make([]byte, respData), 0, 0, 4))
		answers++
	}
	z := esprom.Compress(img)
	exchange(make([]byte, 16), 0)
	for off := 0; off < len(z); off += esprom.BlockSize {
		exchange(append(make([]byte, 16), z[off:min(off+esprom.BlockSize, len(z))]...), 0)
	}
	exchange(make([]byte, 16), 32)
	n := uint32(len(img))
	busy := t.EraseTime(offset/esprom.SectorSize, (n+esprom.SectorSize-1)/esprom.SectorSize)
	busy += t.ProgramTime(len(img))
	busy += t.MD5Time(n)
	byteTime := 10 * time.Second / time.Duration(baud)
	return time.Duration(bytes)*byteTime + time.Duration(answers)*turnaround + busy
}

// BenchmarkDeltaRepair256K repairs the same 256 KiB image on a unit where
// one 4 KiB sector of it is damaged, with delta flashing in 16 KiB chunks:
// sixteen MD5s, one chunk written compressed, one MD5 to verify. It reports
// the time against the full write's protocol minimum ("x-full").
func BenchmarkDeltaRepair256K(b *testing.B) {
	const (
		size       = 256 << 10
		offset     = 0x10000
		baud       = 115200
		turnaround = time.Millisecond
	)
	img, err := espsim.AppImage("esp32", "2.0", "bench", size)
	if err != nil {
		b.Fatal(err)
	}
	m, err := espsim.New("esp32", espsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	host, pd := sim.Pipe()
	host.SetBaud(baud)
	cfg := espsim.LineConfig()
	cfg.Turnaround = turnaround
	line := sim.NewLine(cfg)
	line.Attach(pd)
	d := sim.NewDevice("esp32", m, line)
	defer d.Close()
	d.SetBoot(true)
	d.SetPower(true)
	c := esprom.New(host, esprom.Options{Baud: baud})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Identify(ctx); err != nil {
		b.Fatal(err)
	}
	if err := c.SPIAttach(ctx); err != nil {
		b.Fatal(err)
	}
	full := protocolMinimum(m.Timing(), offset, img, baud, turnaround)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		m.Flash().Load(offset, img)
		m.Flash().Corrupt(offset+200<<10, 4096)
		b.StartTimer()
		res, err := c.Flash(ctx, offset, img, esprom.FlashOptions{Compress: true, Delta: true, Chunk: 16 << 10}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Written != 16<<10 {
			b.Fatalf("Flash() = %+v, want one 16 KiB chunk written", res)
		}
		if err := c.Verify(ctx, offset, img); err != nil {
			b.Fatal(err)
		}
	}
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(per, "s/repair")
	b.ReportMetric(per/full.Seconds(), "x-full")
}
