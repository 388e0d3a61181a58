package espsim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
)

// setParams builds SPI_SET_PARAMS's data as esptool's flash_set_parameters
// does.
func setParams(size uint32) []byte {
	var d []byte
	for _, w := range []uint32{0, size, 64 << 10, esprom.SectorSize, 256, 0xFFFF} {
		d = binary.LittleEndian.AppendUint32(d, w)
	}
	return d
}

// TestROMAssumes2MiB: the ESP32 ROM takes the flash for 2 MiB until
// SPI_SET_PARAMS says otherwise, whatever the chip holds; its erase, MD5
// and read refuse to pass that, and work once the size is set.
func TestROMAssumes2MiB(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{FlashSize: 4 << 20})
		u.connect()
		past := []struct {
			name string
			op   byte
			data []byte
		}{
			{"FLASH_BEGIN across 2 MiB", esprom.OpFlashBegin, beginWords(0x2000, 2, 0x400, ROMFlashSize-0x1000)},
			{"SPI_FLASH_MD5 past 2 MiB", esprom.OpSPIFlashMD5, beginWords(ROMFlashSize, 0x1000, 0, 0)},
			{"READ_FLASH_SLOW past 2 MiB", esprom.OpReadFlashSlow, beginWords(ROMFlashSize, 64, 0, 0)[:8]},
		}
		for _, p := range past {
			send(t, u, p.op, 0, p.data)
			expectStatus(t, u, p.op, 1, esprom.CodeFailedToAct)
		}
		// Inside 2 MiB all is well.
		send(t, u, esprom.OpSPIFlashMD5, 0, beginWords(ROMFlashSize-0x1000, 0x1000, 0, 0))
		expectStatus(t, u, esprom.OpSPIFlashMD5, 0, 0)
		send(t, u, esprom.OpSPISetParams, 0, setParams(4<<20))
		expectStatus(t, u, esprom.OpSPISetParams, 0, 0)
		for _, p := range past {
			send(t, u, p.op, 0, p.data)
			expectStatus(t, u, p.op, 0, 0)
		}
	})
}

// TestAttachFlashSetsTheSize: the client reads the JEDEC ID through the
// SPI controller's registers and sends SPI_SET_PARAMS with the size it
// gives, after which writing and hashing past 2 MiB work.
func TestAttachFlashSetsTheSize(t *testing.T) {
	for _, size := range []int{4 << 20, 16 << 20} {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{FlashSize: size})
			u.dev.SetPower(true)
			c := u.client(esprom.Options{})
			ctx := context.Background()
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Identify(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := c.AttachFlash(ctx)
			if err != nil || got != uint32(size) {
				t.Fatalf("AttachFlash() = %d, %v, want %d", got, err, size)
			}
			data := appImage(t, "esp32", "1", 8<<10)
			at := uint32(size) - 0x4000
			if err := c.WriteFlash(ctx, at, data, nil); err != nil {
				t.Fatalf("WriteFlash(0x%X) = %v", at, err)
			}
			if err := c.Verify(ctx, at, data); err != nil {
				t.Fatalf("Verify(0x%X) = %v", at, err)
			}
		})
	}
}

// TestSPIPinsFromEfuse: a unit whose flash is on other pins than the
// default ones records them in eFuse; SPI_ATTACH with 0 leaves the flash
// unreachable (RDID reads all ones, FLASH_BEGIN fails), and the client,
// which reads the eFuse as the flasher stub does, attaches it.
func TestSPIPinsFromEfuse(t *testing.T) {
	pins := esprom.SPIPins{CLK: 14, Q: 12, D: 13, HD: 4, CS0: 15} // the HSPI pins, wired by hand
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{SPIPins: pins})
		c, _ := u.connect() // SPIAttach: the default pins
		ctx := context.Background()
		if id, err := c.FlashID(ctx); err != nil || id != 0xFFFFFF {
			t.Fatalf("FlashID() after SPI_ATTACH 0 = %06X, %v, want FFFFFF (nothing on the default pins)", id, err)
		}
		if err := c.EraseRegion(ctx, 0x10000, 0x1000); err == nil {
			t.Fatalf("EraseRegion() after SPI_ATTACH 0 = nil, want the ROM to refuse")
		}
		arg, err := c.SPIAttachArg(ctx)
		if err != nil || arg != pins.Packed() {
			t.Fatalf("SPIAttachArg() = %08X, %v, want %08X", arg, err, pins.Packed())
		}
		if size, err := c.AttachFlash(ctx); err != nil || size != 4<<20 {
			t.Fatalf("AttachFlash() = %d, %v, want 4 MiB", size, err)
		}
		if err := c.EraseRegion(ctx, 0x10000, 0x1000); err != nil {
			t.Fatalf("EraseRegion() after attaching the eFuse's pins = %v", err)
		}
	})
}

// TestSyncLikeEsptool: the client sends five SYNCs after each reset, as
// esptool's _connect_attempt, so a ROM that misses its first four syncs
// is reached without a second reset, one that misses seven after one more,
// and one that never answers costs exactly SyncAttempts resets, whose
// delays alternate between ResetDelay and ResetDelay + 500 ms.
func TestSyncLikeEsptool(t *testing.T) {
	for _, tt := range []struct {
		miss, resets int
		ok           bool
	}{
		{0, 1, true},
		{4, 1, true},
		{7, 2, true},
		{1000, 7, false},
	} {
		t.Run(fmt.Sprint(tt.miss), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "esp32", Options{})
				u.m.SetFaults(Faults{MissSyncs: tt.miss})
				u.dev.SetPower(true)
				var at []time.Time
				c := u.client(esprom.Options{Reset: func(ctx context.Context) error {
					at = append(at, time.Now())
					return u.enter(ctx)
				}})
				err := c.Sync(context.Background())
				if (err == nil) != tt.ok {
					t.Fatalf("Sync() with %d syncs missed = %v, want ok %v", tt.miss, err, tt.ok)
				}
				if got := u.m.Stats().BootloaderRuns; got != tt.resets || len(at) != tt.resets {
					t.Errorf("Sync() reset the unit %d times (%d runs of the ROM), want %d", len(at), got, tt.resets)
				}
				var be *esprom.BootModeError
				if errors.As(err, &be) {
					t.Errorf("Sync() = %v, want no boot-mode error: the ROM said download mode", err)
				}
				if len(at) >= 3 {
					d1, d2 := at[1].Sub(at[0]), at[2].Sub(at[1])
					if diff := d2 - d1; diff < 400*time.Millisecond || diff > 600*time.Millisecond {
						t.Errorf("the second reset's round lasted %v, the first %v: want the delays to alternate by 500 ms", d2, d1)
					}
				}
			})
		})
	}
}

// TestNotInDownloadMode: when the entry sequence fails to hold GPIO0 low,
// the ESP32 ROM says so in its boot line (boot:0x13 (SPI_FAST_FLASH_BOOT))
// and the client names that failure instead of a bare sync timeout.
func TestNotInDownloadMode(t *testing.T) {
	for _, tt := range []struct {
		name  string
		image []byte
	}{
		{"bricked", nil},
		{"application", nil}, // set below
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := Options{Board: "meter-e"}
				if tt.name == "application" {
					o.Image = appImage(t, "esp32", "1.0", 16<<10)
				}
				u := newUnit(t, "esp32", o)
				u.dev.SetPower(true)
				c := u.client(esprom.Options{SyncAttempts: 2, Reset: func(context.Context) error {
					u.boot() // GPIO0 released: a broken strap line
					return nil
				}})
				err := c.Sync(context.Background())
				var be *esprom.BootModeError
				if !errors.As(err, &be) {
					t.Fatalf("Sync() = %v, want a *BootModeError", err)
				}
				if want := "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"; be.Line != want {
					t.Errorf("BootModeError.Line = %q, want %q", be.Line, want)
				}
				if !strings.Contains(err.Error(), "not in download mode: GPIO0 strap not low") {
					t.Errorf("Sync() = %q, want it to name the strap", err)
				}
			})
		})
	}
}

// TestChangeBaudCompensatesDrift: an ESP32 ROM whose 8 MHz clock
// calibration puts its crystal at 42 MHz lands 4.8 % low on any rate it is
// asked for: a host that asks for 921600 plainly loses the unit, one that
// scales the request as esptool does keeps it.
func TestChangeBaudCompensatesDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{ROMCrystal: 42000000})
		c, info := u.connect()
		ctx := context.Background()
		if f, err := c.ROMCrystal(ctx); err != nil || f != 42000000 {
			t.Fatalf("ROMCrystal() = %d, %v, want 42000000", f, err)
		}
		if err := c.ChangeBaud(ctx, 921600); err != nil {
			t.Fatalf("ChangeBaud(921600) = %v", err)
		}
		if got, err := c.Identify(ctx); err != nil || got.MAC != info.MAC {
			t.Fatalf("Identify() at 921600 after compensation = %v, %v", got, err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{ROMCrystal: 42000000})
		u.connect()
		// esptool before its workaround: the rate asked for as it is.
		send(t, u, esprom.OpChangeBaudrate, 0, beginWords(921600, 0, 0, 0)[:8])
		expectStatus(t, u, esprom.OpChangeBaudrate, 0, 0)
		u.host.SetBaud(921600)
		c := esprom.New(u.host, esprom.Options{Timeout: 200 * time.Millisecond})
		c.SetChip(esprom.ESP32)
		if _, err := c.ReadReg(context.Background(), esprom.ChipDetectReg); err == nil {
			t.Errorf("ReadReg() after an uncompensated CHANGE_BAUDRATE = nil, want garbage: the ROM's UART is 4.8 %% off")
		}
	})
}

// TestWorstCaseFlashTimes runs the client against a flash at its
// datasheet's maximum erase and program times on a paced line (fake time):
// a 1 MiB erase then takes 32 s and one compressed block of zeros inflates
// to hundreds of KiB, 3 ms a page. The client's timeouts, sized as
// esptool's (40 s per MB, of the inflated size for a compressed block),
// must hold.
func TestWorstCaseFlashTimes(t *testing.T) {
	for _, compress := range []bool{true, false} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, err := New("esp32", Options{Timing: &WorstTiming})
				if err != nil {
					t.Fatal(err)
				}
				host, pd := sim.Pipe()
				host.SetBaud(115200)
				line := sim.NewLine(LineConfig()) // paced: busy times count
				line.Attach(pd)
				d := sim.NewDevice("esp32", m, line)
				defer d.Close()
				d.SetPower(true)
				u := &unit{t: t, host: host, dev: d, m: m}
				c := u.client(esprom.Options{})
				ctx := context.Background()
				if err := c.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Identify(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.AttachFlash(ctx); err != nil {
					t.Fatal(err)
				}
				data := make([]byte, 1<<20)
				if !compress {
					data = data[:64<<10]
				}
				start := time.Now()
				if _, err := c.Flash(ctx, 0x100000, data, esprom.FlashOptions{Compress: compress}, nil); err != nil {
					t.Fatalf("Flash() at the flash's maximum times = %v", err)
				}
				if err := c.Verify(ctx, 0x100000, data); err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				t.Logf("%d KiB written at worst-case times in %v (fake clock)", len(data)>>10, time.Since(start))
			})
		})
	}
}

// TestBaudSwitchTakesTime: after answering CHANGE_BAUDRATE the unit's UART
// stays at the old rate for 10 ms (esptool's stub_io_set_baudrate), so a
// host that talks at the new rate at once is garbled and gets no answer;
// after esptool's 50 ms pause it is heard. A model that switched at once
// would answer the first request.
func TestBaudSwitchTakesTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := New("esp32", Options{})
		if err != nil {
			t.Fatal(err)
		}
		host, pd := sim.Pipe()
		host.SetBaud(115200)
		line := sim.NewLine(LineConfig()) // paced: the switch delay counts
		line.Attach(pd)
		d := sim.NewDevice("esp32", m, line)
		defer d.Close()
		d.SetBoot(true)
		d.SetPower(true)
		u := &unit{t: t, host: host, dev: d, m: m}
		c := u.client(esprom.Options{})
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		// The ROM's crystal is nominal here: ask for the rate as it is.
		send(t, u, esprom.OpChangeBaudrate, 0, beginWords(460800, 0, 0, 0)[:8])
		// Read no further than the answer: the host switches the moment it
		// has it.
		var dec esprom.SLIPDecoder
		host.SetReadTimeout(time.Millisecond)
		buf := make([]byte, 64)
		answered := false
		for waited := 0; !answered && waited < 500; waited++ {
			n, _ := host.Read(buf)
			for _, b := range buf[:n] {
				if pkt, _ := dec.Feed(b); pkt != nil {
					if r, err := esprom.DecodeResponse(pkt, m.Chip().StatusLen, -1); err == nil && r.Op == esprom.OpChangeBaudrate && r.Status == 0 {
						answered = true
					}
				}
			}
		}
		if !answered {
			t.Fatal("no answer to CHANGE_BAUDRATE")
		}
		host.SetBaud(460800)
		quick := esprom.New(host, esprom.Options{Timeout: 100 * time.Millisecond})
		quick.SetChip(esprom.ESP32)
		if _, err := quick.ReadReg(ctx, esprom.ChipDetectReg); err == nil {
			t.Fatal("ReadReg() sent at once after CHANGE_BAUDRATE = nil, want no answer: the unit's UART switches 10 ms after its answer")
		}
		time.Sleep(50 * time.Millisecond)
		u.quiet(20 * time.Millisecond)
		if _, err := quick.ReadReg(ctx, esprom.ChipDetectReg); err != nil {
			t.Fatalf("ReadReg() after esptool's 50 ms pause = %v, want the answer at 460800", err)
		}
	})
}

// TestClientWaitsOutTheBaudSwitch: the client pauses 50 ms after
// CHANGE_BAUDRATE, as esptool does, so its next command is heard on a unit
// whose UART switches 10 ms after its answer.
func TestClientWaitsOutTheBaudSwitch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := New("esp32", Options{})
		if err != nil {
			t.Fatal(err)
		}
		host, pd := sim.Pipe()
		host.SetBaud(115200)
		line := sim.NewLine(LineConfig())
		line.Attach(pd)
		d := sim.NewDevice("esp32", m, line)
		defer d.Close()
		d.SetBoot(true)
		d.SetPower(true)
		u := &unit{t: t, host: host, dev: d, m: m}
		c := u.client(esprom.Options{Timeout: 100 * time.Millisecond})
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.ChangeBaud(ctx, 460800); err != nil {
			t.Fatalf("ChangeBaud(460800) = %v", err)
		}
		if _, err := c.ReadReg(ctx, esprom.ChipDetectReg); err != nil {
			t.Fatalf("ReadReg() right after ChangeBaud = %v, want an answer at 460800", err)
		}
	})
}
