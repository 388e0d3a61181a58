package espsim

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
)

// unit is a simulated unit on an in-memory link, for tests under synctest.
type unit struct {
	t    *testing.T
	host *sim.PipeHost
	dev  *sim.Device
	m    *Model
	ar   *AutoReset
}

func newUnit(t *testing.T, chip string, o Options) *unit {
	t.Helper()
	m, err := New(chip, o)
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	host.SetBaud(115200)
	cfg := LineConfig()
	cfg.Fast = true
	line := sim.NewLine(cfg)
	line.Attach(pd)
	d := sim.NewDevice(chip, m, line)
	t.Cleanup(d.Close)
	return &unit{t: t, host: host, dev: d, m: m, ar: NewAutoReset(d)}
}

// enter resets the unit with GPIO0 low, as a bench's lines do.
func (u *unit) enter(context.Context) error {
	u.dev.SetBoot(true)
	u.dev.SetReset(true)
	u.dev.SetReset(false)
	return nil
}

// port is a host port whose DTR and RTS reach the unit through a dev
// board's auto-reset circuit.
type port struct {
	*sim.PipeHost
	*AutoReset
}

func (u *unit) client(o esprom.Options) *esprom.Client {
	if o.Reset == nil {
		o.Reset = u.enter
	}
	return esprom.New(u.host, o)
}

// connect powers the unit, syncs and identifies it.
func (u *unit) connect() (*esprom.Client, esprom.Info) {
	u.t.Helper()
	u.dev.SetPower(true)
	c := u.client(esprom.Options{})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		u.t.Fatalf("Sync() = %v", err)
	}
	info, err := c.Identify(ctx)
	if err != nil {
		u.t.Fatalf("Identify() = %v", err)
	}
	if err := c.SPIAttach(ctx); err != nil {
		u.t.Fatalf("SPIAttach() = %v", err)
	}
	return c, info
}

// readUntil reads from the host side until the text contains want.
func (u *unit) readUntil(want string, within time.Duration) string {
	u.t.Helper()
	var got []byte
	buf := make([]byte, 256)
	end := time.Now().Add(within)
	u.host.SetReadTimeout(20 * time.Millisecond)
	for time.Now().Before(end) {
		n, err := u.host.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return string(got)
		}
		if err != nil {
			break
		}
	}
	u.t.Fatalf("after %v the unit sent %q, want it to contain %q", within, got, want)
	return ""
}

// quiet returns what the unit sends within d.
func (u *unit) quiet(d time.Duration) []byte {
	var got []byte
	buf := make([]byte, 256)
	u.host.SetReadTimeout(d)
	for {
		n, _ := u.host.Read(buf)
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}

// boot releases GPIO0 and resets the unit into its application.
func (u *unit) boot() {
	u.dev.SetBoot(false)
	u.dev.SetReset(true)
	u.dev.SetReset(false)
}

func appImage(t *testing.T, chip, version string, size int) []byte {
	t.Helper()
	img, err := AppImage(chip, version, "meter-e", size)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var chips = []string{"esp32", "esp8266"}

func TestPowerOnBootsTheApplication(t *testing.T) {
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, chip, Options{Board: "meter-e", Seed: 7, Image: appImage(t, chip, "1.2.0", 64<<10)})
				u.dev.SetPower(true)
				want := fmt.Sprintf("meter-e firmware v1.2.0 (id %s)\r\nready\r\n> ", u.m.Serial())
				u.readUntil(want, 2*time.Second)
				if st := u.m.Stats(); st.AppRuns != 1 || st.BootloaderRuns != 0 {
					t.Errorf("Stats() = %+v, want one application run and no download mode", st)
				}
				// The application does not speak the ROM protocol.
				c := esprom.New(u.host, esprom.Options{SyncAttempts: 2})
				if err := c.Sync(context.Background()); err == nil {
					t.Errorf("Sync() with the application running = nil, want an error")
				}
			})
		})
	}
}

func TestBrickedUnitBootLoops(t *testing.T) {
	good := appImage(t, "esp32", "1.0", 64<<10)
	bad := append([]byte(nil), good...)
	bad[40000] ^= 0xFF
	wrongEntry := append([]byte(nil), good...)
	wrongEntry[4], wrongEntry[5], wrongEntry[6], wrongEntry[7] = 0, 0, 0, 0x3F
	tests := []struct {
		name  string
		image []byte
		want  string
	}{
		{"erased", nil, "invalid header: 0xffffffff"},
		{"checksum", bad, "checksum failure"},
		{"entry", wrongEntry, "invalid entry point: 0x3f000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "esp32", Options{Board: "meter-e", Image: tt.image, Reboot: 200 * time.Millisecond})
				u.dev.SetPower(true)
				u.readUntil("rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)", time.Second)
				u.readUntil(tt.want, time.Second)
				u.readUntil("rst:0x10 (RTCWDT_RTC_RESET)", time.Second)
				u.readUntil(tt.want, time.Second)
				if st := u.m.Stats(); st.BootFailures < 2 || st.AppRuns != 0 {
					t.Errorf("Stats() = %+v, want at least two boot failures and no application", st)
				}
			})
		})
	}
}

func TestDownloadModeBootLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{})
		u.dev.SetBoot(true)
		u.dev.SetPower(true)
		u.readUntil("boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n", time.Second)
	})
	// The ESP8266 ROM prints at 74880: a host at 115200 sees garbage.
	for _, baud := range []int{115200, 74880} {
		t.Run(fmt.Sprint(baud), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "esp8266", Options{})
				u.host.SetBaud(baud)
				u.dev.SetBoot(true)
				u.dev.SetPower(true)
				got := string(u.quiet(100 * time.Millisecond))
				readable := strings.Contains(got, "ets Jan  8 2013,rst cause:1, boot mode:(1,6)")
				if readable != (baud == 74880) {
					t.Errorf("at %d the ESP8266 boot line reads %q; want it readable only at 74880", baud, got)
				}
			})
		})
	}
}

func TestIdentify(t *testing.T) {
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, chip, Options{Seed: 42})
				_, info := u.connect()
				if info.Chip.Name != u.m.Chip().Name || info.MAC != u.m.MAC() {
					t.Errorf("Identify() = %v, want %s with MAC %s", info, u.m.Chip().Name, u.m.Serial())
				}
				if info.Serial() != u.m.Serial() {
					t.Errorf("Serial() = %s, want %s", info.Serial(), u.m.Serial())
				}
			})
		})
	}
}

func TestSyncAnsweredEightTimes(t *testing.T) {
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, chip, Options{})
				u.dev.SetBoot(true)
				u.dev.SetPower(true)
				time.Sleep(50 * time.Millisecond) // the boot line
				u.quiet(10 * time.Millisecond)
				u.host.Write(esprom.AppendSLIP(nil, esprom.AppendRequest(nil, esprom.OpSync, 0, esprom.SyncPayload)))
				got := u.quiet(50 * time.Millisecond)
				var d esprom.SLIPDecoder
				n := 0
				for _, b := range got {
					pkt, err := d.Feed(b)
					if err != nil {
						t.Fatal(err)
					}
					if pkt == nil {
						continue
					}
					r, err := esprom.DecodeResponse(pkt, u.m.Chip().StatusLen, 0)
					if err != nil || r.Op != esprom.OpSync || r.Status != 0 || r.Value != esprom.SyncValue {
						t.Fatalf("answer %d to SYNC = %+v, %v; want an OK SYNC answer", n, r, err)
					}
					if len(pkt) != 8+u.m.Chip().StatusLen {
						t.Errorf("answer of %d bytes, want 8 + %d status bytes", len(pkt), u.m.Chip().StatusLen)
					}
					n++
				}
				if n != 8 {
					t.Errorf("SYNC was answered %d times, want 8", n)
				}
			})
		})
	}
}

func TestWriteVerifyRun(t *testing.T) {
	tests := []struct {
		chip     string
		compress bool
	}{
		{"esp32", true},
		{"esp32", false},
		{"esp8266", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/compress=%v", tt.chip, tt.compress), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, tt.chip, Options{Board: "meter-e", Image: appImage(t, tt.chip, "1.0", 48<<10)})
				c, _ := u.connect()
				ctx := context.Background()
				img := appImage(t, tt.chip, "2.0", 40<<10+100)
				off := u.m.BootOffset()
				var last int64
				res, err := c.Flash(ctx, off, img, esprom.FlashOptions{Compress: tt.compress}, func(done, total int64) { last = done })
				if err != nil {
					t.Fatalf("Flash() = %v", err)
				}
				if res.Written != uint32(len(img)) || last != int64(len(img)) {
					t.Errorf("Flash() wrote %d bytes, progress ended at %d; want %d", res.Written, last, len(img))
				}
				if err := c.Verify(ctx, off, img); err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				got, _ := u.m.Flash().Read(off, len(img))
				if !bytes.Equal(got, img) {
					t.Fatalf("flash differs from the image written")
				}
				if err := c.Run(ctx); err != nil {
					t.Fatalf("Run() = %v", err)
				}
				u.readUntil(fmt.Sprintf("meter-e firmware v2.0 (id %s)", u.m.Serial()), 2*time.Second)
			})
		})
	}
}

func TestESP8266EraseBug(t *testing.T) {
	// The ESP8266 ROM erases twice a small request; the client asks for
	// half, so that exactly the region (and, for an odd count, one sector
	// more) is erased, and data beyond it survives.
	tests := []struct {
		off, size uint32
		erased    uint32 // sectors the client's write erases
	}{
		{0x0000, 0x1000, 2}, // 1 sector: asks for 1, the ROM erases 2
		{0x0000, 0x2000, 2},
		{0x0000, 0x10000, 16},
		{0x8000, 0x20000, 32},
		{0x3000, 0x5000, 6},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#x+%#x", tt.off, tt.size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "esp8266", Options{})
				c, _ := u.connect()
				canary := bytes.Repeat([]byte{0x5A}, 0x1000)
				after := tt.off + tt.erased*esprom.SectorSize
				u.m.Flash().Load(after, canary)
				before := u.m.Stats().SectorsErased
				data := bytes.Repeat([]byte{0x11}, int(tt.size))
				if err := c.WriteFlash(context.Background(), tt.off, data, nil); err != nil {
					t.Fatalf("WriteFlash() = %v", err)
				}
				if n := u.m.Stats().SectorsErased - before; n != int(tt.erased) {
					t.Errorf("the ROM erased %d sectors, want %d", n, tt.erased)
				}
				if got, _ := u.m.Flash().Read(after, len(canary)); !bytes.Equal(got, canary) {
					t.Errorf("the sector at 0x%X after the region was erased", after)
				}
			})
		})
	}
	// Without the workaround the ROM erases too much.
	if got := esprom.ESP8266Erased(0, 0x3000); got != 6 {
		t.Errorf("ESP8266Erased(0, 0x3000) = %d sectors, want 6", got)
	}
}

func TestESP8266LacksESP32Commands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp8266", Options{})
		c, _ := u.connect()
		ctx := context.Background()
		if _, err := c.FlashMD5(ctx, 0, 4096); !errors.Is(err, esprom.ErrUnsupported) {
			t.Errorf("FlashMD5() = %v, want ErrUnsupported", err)
		}
		if err := c.WriteFlashDeflate(ctx, 0, []byte{1, 2, 3, 4}, nil); !errors.Is(err, esprom.ErrUnsupported) {
			t.Errorf("WriteFlashDeflate() = %v, want ErrUnsupported", err)
		}
		if err := c.ChangeBaud(ctx, 460800); !errors.Is(err, esprom.ErrUnsupported) {
			t.Errorf("ChangeBaud() = %v, want ErrUnsupported", err)
		}
		// The ROM itself answers error 05 to those commands, with two
		// status bytes: a client that assumes an ESP32 is told so.
		c.SetChip(esprom.ESP32)
		c2 := esprom.New(u.host, esprom.Options{})
		c2.SetChip(esprom.Chip{Name: "ESP8266", StatusLen: 2, MD5: true, Deflate: true})
		_, err := c2.FlashMD5(ctx, 0, 4096)
		var re *esprom.ROMError
		if !errors.As(err, &re) || re.Code != esprom.CodeInvalidMessage || !errors.Is(err, esprom.ErrUnsupported) {
			t.Errorf("SPI_FLASH_MD5 sent to the ESP8266 ROM = %v, want ROM error 05", err)
		}
		// Verify vouches only for what was written in this session.
		img := appImage(t, "esp8266", "3.0", 8<<10)
		if err := c2.Verify(ctx, 0, img); err == nil {
			t.Errorf("Verify() of a region not written = nil, want an error")
		}
		c3 := esprom.New(u.host, esprom.Options{})
		c3.SetChip(esprom.ESP8266)
		if err := c3.Verify(ctx, 0, img); !errors.Is(err, esprom.ErrUnsupported) {
			t.Errorf("Verify() of a region not written = %v, want ErrUnsupported", err)
		}
		if err := c3.WriteFlash(ctx, 0, img, nil); err != nil {
			t.Fatal(err)
		}
		if err := c3.Verify(ctx, 0, img); err != nil {
			t.Errorf("Verify() after WriteFlash = %v, want nil", err)
		}
	})
}

func TestDeltaSkipsMatchingChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		img := appImage(t, "esp32", "1.0", 256<<10)
		bad := append([]byte(nil), img...)
		for i := 200 << 10; i < 210<<10; i++ { // one chunk damaged
			bad[i] = 0xFF
		}
		u := newUnit(t, "esp32", Options{Board: "meter-e", Image: bad})
		c, _ := u.connect()
		ctx := context.Background()
		off := u.m.BootOffset()
		before := u.m.Stats().BytesWritten
		res, err := c.Flash(ctx, off, img, esprom.FlashOptions{Compress: true, Delta: true, Chunk: 64 << 10}, nil)
		if err != nil {
			t.Fatalf("Flash() = %v", err)
		}
		if res.Chunks != 4 || res.Skipped != 3 || res.Written != 64<<10 {
			t.Errorf("Flash() = %+v, want 4 chunks, 3 skipped, 64 KiB written", res)
		}
		if n := u.m.Stats().BytesWritten - before; n != 64<<10 {
			t.Errorf("the unit programmed %d bytes, want %d", n, 64<<10)
		}
		if err := c.Verify(ctx, off, img); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
		// Nothing differs now: a second delta writes nothing.
		res, err = c.Flash(ctx, off, img, esprom.FlashOptions{Compress: true, Delta: true}, nil)
		if err != nil || res.Written != 0 {
			t.Errorf("second Flash() = %+v, %v; want nothing written", res, err)
		}
		u.boot()
		u.readUntil("meter-e firmware v1.0", 2*time.Second)
	})
}

func TestVerifyFindsDamage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{})
		c, _ := u.connect()
		ctx := context.Background()
		img := appImage(t, "esp32", "1.0", 16<<10)
		if _, err := c.Flash(ctx, 0x10000, img, esprom.FlashOptions{Compress: true}, nil); err != nil {
			t.Fatal(err)
		}
		u.m.Flash().Corrupt(0x10000+5000, 1)
		err := c.Verify(ctx, 0x10000, img)
		var ve *esprom.VerifyError
		if !errors.As(err, &ve) || ve.Addr != 0x10000 || ve.Want == ve.Got {
			t.Fatalf("Verify() after damage = %v, want a VerifyError", err)
		}
		sum := md5.Sum(img)
		if ve.Want != fmt.Sprintf("%x", sum) {
			t.Errorf("VerifyError.Want = %s, want %x", ve.Want, sum)
		}
	})
}

func TestReadFlash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		img := appImage(t, "esp32", "1.0", 8<<10)
		u := newUnit(t, "esp32", Options{Image: img})
		c, _ := u.connect()
		got, err := c.ReadFlash(context.Background(), 0x1000, 1000, nil)
		if err != nil || !bytes.Equal(got, img[:1000]) {
			t.Fatalf("ReadFlash(0x1000, 1000) = %d bytes, %v; want the image's first 1000", len(got), err)
		}
	})
}

func TestFaults(t *testing.T) {
	t.Run("garbled block is sent again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{})
			c, _ := u.connect()
			u.m.SetFaults(Faults{GarbleBlocks: 2})
			img := appImage(t, "esp32", "1.0", 8<<10)
			ctx := context.Background()
			if err := c.WriteFlash(ctx, 0x1000, img, nil); err != nil {
				t.Fatalf("WriteFlash() with two garbled blocks = %v, want the blocks sent again", err)
			}
			if err := c.Verify(ctx, 0x1000, img); err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if st := u.m.Stats(); st.Errors != 2 {
				t.Errorf("the ROM refused %d requests, want 2", st.Errors)
			}
		})
	})
	t.Run("worn flash", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp8266", Options{})
			c, _ := u.connect()
			u.m.SetFaults(Faults{FailPrograms: 1})
			err := c.WriteFlash(context.Background(), 0, make([]byte, 4096), nil)
			var re *esprom.ROMError
			if !errors.As(err, &re) || re.Code != esprom.CodeFlashWrite || re.Op != esprom.OpFlashData {
				t.Fatalf("WriteFlash() on worn flash = %v, want ROM error 08 on FLASH_DATA", err)
			}
			if !strings.Contains(err.Error(), "flash write error") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	})
	t.Run("corrupt stream", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{})
			u.connect()
			// A FLASH_DEFL_BEGIN for one block, then a block that is not zlib.
			d := beginWords(4096, 1, esprom.BlockSize, 0)
			send(t, u, esprom.OpFlashDeflBegin, 0, d)
			expectStatus(t, u, esprom.OpFlashDeflBegin, 0, 0)
			junk := bytes.Repeat([]byte{0x42}, 64)
			blk := append(beginWords(uint32(len(junk)), 0, 0, 0), junk...)
			send(t, u, esprom.OpFlashDeflData, esprom.Checksum(junk), blk)
			expectStatus(t, u, esprom.OpFlashDeflData, 1, esprom.CodeDeflate)
		})
	})
	t.Run("mangled answer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{})
			c, info := u.connect()
			ctx := context.Background()
			u.m.SetFaults(Faults{MangleAnswers: 1})
			_, err := c.ReadReg(ctx, esprom.ChipDetectReg)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("ReadReg() answered by a mangled packet = %v, want a timeout (the packet dropped)", err)
			}
			// The next exchange is clean: the decoder resynchronised.
			if got, err := c.Identify(ctx); err != nil || got.MAC != info.MAC {
				t.Fatalf("Identify() after the mangled answer = %v, %v", got, err)
			}
		})
	})
	t.Run("hang", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{})
			c, _ := u.connect()
			u.m.SetFaults(Faults{HangAfter: 3000})
			err := c.WriteFlash(context.Background(), 0x1000, make([]byte, 16<<10), nil)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("WriteFlash() to a unit that stops answering = %v, want a timeout", err)
			}
			var te *bootloader.TimeoutError
			if !errors.As(err, &te) || !strings.Contains(te.Op, "FLASH_DATA") {
				t.Errorf("error %v does not name FLASH_DATA", err)
			}
		})
	})
}

func beginWords(a, b, c, d uint32) []byte {
	var out []byte
	for _, w := range []uint32{a, b, c, d} {
		out = append(out, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	return out
}

func send(t *testing.T, u *unit, op byte, chk uint32, data []byte) {
	t.Helper()
	u.host.Write(esprom.AppendSLIP(nil, esprom.AppendRequest(nil, op, chk, data)))
}

func expectStatus(t *testing.T, u *unit, op, status, code byte) {
	t.Helper()
	got := u.quiet(500 * time.Millisecond)
	var d esprom.SLIPDecoder
	for _, b := range got {
		pkt, _ := d.Feed(b)
		if pkt == nil {
			continue
		}
		r, err := esprom.DecodeResponse(pkt, u.m.Chip().StatusLen, -1)
		if err != nil || r.Op != op {
			continue
		}
		if r.Status != status || r.Code != code {
			t.Fatalf("%s answered status %d code 0x%02X, want %d 0x%02X", esprom.OpName(op), r.Status, r.Code, status, code)
		}
		return
	}
	t.Fatalf("no answer to %s in % X", esprom.OpName(op), got)
}

func TestChangeBaud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{})
		c, info := u.connect()
		ctx := context.Background()
		if err := c.ChangeBaud(ctx, 921600); err != nil {
			t.Fatalf("ChangeBaud(921600) = %v", err)
		}
		if got, err := c.Identify(ctx); err != nil || got.MAC != info.MAC {
			t.Fatalf("Identify() at 921600 = %v, %v", got, err)
		}
		// A host left at the old rate gets garbage.
		u.host.SetBaud(115200)
		c2 := esprom.New(u.host, esprom.Options{Timeout: 200 * time.Millisecond})
		c2.SetChip(esprom.ESP32)
		if _, err := c2.ReadReg(ctx, esprom.ChipDetectReg); err == nil {
			t.Errorf("ReadReg() at 115200 after the ROM moved to 921600 = nil, want an error")
		}
	})
}

func TestEntrySequences(t *testing.T) {
	seqs := map[string]func(l bootloader.ModemLines) func(context.Context) error{
		"classic":    func(l bootloader.ModemLines) func(context.Context) error { return esprom.ClassicReset(l, 0) },
		"unix-tight": func(l bootloader.ModemLines) func(context.Context) error { return esprom.UnixTightReset(l, 0) },
	}
	for name, seq := range seqs {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "esp32", Options{Board: "meter-e", Image: appImage(t, "esp32", "1.0", 8<<10)})
				u.dev.SetPower(true)
				u.readUntil("ready", time.Second)
				p := port{u.host, u.ar}
				c := esprom.New(p, esprom.Options{Reset: seq(p)})
				ctx := context.Background()
				if err := c.Sync(ctx); err != nil {
					t.Fatalf("Sync() through the %s sequence = %v", name, err)
				}
				if _, err := c.Identify(ctx); err != nil {
					t.Fatal(err)
				}
				boots := u.dev.Boots()
				if last := boots[len(boots)-1]; !last.Strap || last.Cause != sim.External {
					t.Errorf("last boot = %+v, want an external reset with GPIO0 low", last)
				}
				if u.m.Stats().BootloaderRuns != 1 {
					t.Errorf("download mode ran %d times, want once", u.m.Stats().BootloaderRuns)
				}
			})
		})
	}
	// Setting the lines instantly, with no RC delay on EN to cover the
	// moment both are on, the classic sequence would release EN with GPIO0
	// still high; the circuit's delay is what makes it work.
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{Board: "meter-e", Image: appImage(t, "esp32", "1.0", 8<<10)})
		u.dev.SetPower(true)
		u.ar.SetRTS(true)
		u.ar.SetDTR(true) // both on: EN released, GPIO0 high...
		time.Sleep(10 * time.Millisecond)
		u.ar.SetRTS(false) // ...too late: the unit booted its application
		time.Sleep(10 * time.Millisecond)
		if b := u.dev.Boots(); b[len(b)-1].Strap {
			t.Errorf("a slow RTS release still entered download mode")
		}
	})
}

// TestLongSession: thousands of exchanges in one connection, more answer
// bytes than any read buffer holds.
func TestLongSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{})
		c, _ := u.connect()
		ctx := context.Background()
		for i := range 3000 {
			v, err := c.ReadReg(ctx, esprom.ChipDetectReg)
			if err != nil || v != esprom.ESP32.Magic {
				t.Fatalf("ReadReg() #%d = %#x, %v; want %#x", i, v, err, esprom.ESP32.Magic)
			}
		}
	})
}

// loadStub sends what esptool sends to start its flasher stub: a RAM
// upload and MEM_END with the entry point, and waits for OHAI.
func (u *unit) loadStub() {
	u.t.Helper()
	code := bytes.Repeat([]byte{0x36, 0x41, 0x00}, 100)
	send(u.t, u, esprom.OpMemBegin, 0, beginWords(uint32(len(code)), 1, 0x1800, 0x40090000))
	expectStatus(u.t, u, esprom.OpMemBegin, 0, 0)
	send(u.t, u, esprom.OpMemData, esprom.Checksum(code), append(beginWords(uint32(len(code)), 0, 0, 0), code...))
	expectStatus(u.t, u, esprom.OpMemData, 0, 0)
	send(u.t, u, esprom.OpMemEnd, 0, beginWords(0, 0x40090004, 0, 0)[:8])
	got := u.quiet(200 * time.Millisecond)
	if !bytes.Contains(got, esprom.AppendSLIP(nil, []byte("OHAI"))) {
		u.t.Fatalf("after MEM_END the unit sent % X, want OHAI", got)
	}
}

// TestFlasherStub: a unit whose ROM started esptool's flasher stub (as a
// crashed or --after no_reset_stub esptool leaves it) is still flashed:
// the client sees SYNC answered with 0 and uses the stub's forms.
func TestFlasherStub(t *testing.T) {
	for _, chip := range chips {
		t.Run(chip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, chip, Options{Board: "meter-e"})
				u.connect()
				u.loadStub()
				c := esprom.New(u.host, esprom.Options{})
				ctx := context.Background()
				if err := c.Sync(ctx); err != nil {
					t.Fatalf("Sync() with the stub = %v", err)
				}
				info, err := c.Identify(ctx)
				if err != nil || !c.Stub() || info.MAC != u.m.MAC() {
					t.Fatalf("Identify() = %v, %v, Stub() = %v; want the unit, through the stub", info, err, c.Stub())
				}
				if err := c.SPIAttach(ctx); err != nil {
					t.Fatal(err)
				}
				img := appImage(t, chip, "4.0", 20<<10)
				off := u.m.BootOffset()
				// The stub inflates on the ESP8266 too, and erases as it writes.
				if _, err := c.Flash(ctx, off, img, esprom.FlashOptions{Compress: true, Delta: true}, nil); err != nil {
					t.Fatalf("Flash() = %v", err)
				}
				if err := c.Verify(ctx, off, img); err != nil {
					t.Fatalf("Verify() with the stub's raw MD5 = %v", err)
				}
				if err := c.EraseRegion(ctx, 0x100000, 0x1000); err != nil {
					t.Fatalf("EraseRegion() = %v", err)
				}
				if chip == "esp32" {
					// The ESP32 leaves the stub by a reset: the client
					// refuses RUN_USER_CODE, and the stub ignores it.
					if err := c.Run(ctx); !errors.Is(err, esprom.ErrUnsupported) {
						t.Fatalf("Run() with the ESP32 stub = %v, want ErrUnsupported", err)
					}
					send(t, u, esprom.OpRunUserCode, 0, nil)
					if got := u.quiet(200 * time.Millisecond); len(got) != 0 || u.m.Stats().AppRuns != 0 {
						t.Fatalf("the ESP32 stub answered RUN_USER_CODE with % X or ran the application", got)
					}
					u.boot()
				} else if err := c.Run(ctx); err != nil {
					t.Fatalf("Run() = %v", err)
				}
				u.readUntil("meter-e firmware v4.0", 2*time.Second)
			})
		})
	}
}

// TestFlashEndReboot: FLASH_END with "reboot" resets the unit; with GPIO0
// still low it comes back in download mode.
func TestFlashEndReboot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{})
		c, _ := u.connect()
		ctx := context.Background()
		if err := c.EraseRegion(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := c.FlashEnd(ctx, true); err != nil {
			t.Fatalf("FlashEnd(reboot) = %v", err)
		}
		// The client may have read the boot line along with the answer:
		// judge by the unit's boots once it is idle.
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if n := u.m.Stats().BootloaderRuns; n != 2 {
			t.Errorf("download mode ran %d times, want twice", n)
		}
		b := u.dev.Boots()
		if last := b[len(b)-1]; last.Cause != sim.Software || !last.Strap {
			t.Errorf("last boot = %+v, want a software reset into download mode", last)
		}
	})
}
