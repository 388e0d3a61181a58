package avrsim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simtest"
)

// unit is a simulated unit on an in-memory link, for tests under synctest.
type unit struct {
	t    *testing.T
	host *sim.PipeHost
	dev  *sim.Device
	m    *Model
}

func newUnit(t *testing.T, part string, o Options) *unit {
	t.Helper()
	m, err := New(part, o)
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(pd)
	d := sim.NewDevice(part, m, line)
	t.Cleanup(d.Close)
	return &unit{t: t, host: host, dev: d, m: m}
}

// pulse resets the unit as a bench's reset line (or DTR) does.
func (u *unit) pulse(context.Context) error {
	u.dev.SetReset(true)
	u.dev.SetReset(false)
	return nil
}

// client returns a client whose sync attempts pulse the unit's reset.
func (u *unit) client() *avr.Client {
	return avr.New(u.host, avr.Options{Reset: u.pulse})
}

// readUntil reads from the host side until the text contains want.
func (u *unit) readUntil(want string, within time.Duration) string {
	u.t.Helper()
	return simtest.ReadUntil(u.t, u.host, want, within)
}

// quiet returns what the unit sends until it is quiet for d.
func (u *unit) quiet(d time.Duration) []byte { return simtest.Quiet(u.host, d) }

func appImage(t *testing.T, part, version string, size int) []byte {
	t.Helper()
	img, err := AppImage(part, version, "uno-r3", size)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func causes(bs []sim.Boot) []sim.Cause {
	var c []sim.Cause
	for _, b := range bs {
		c = append(c, b.Cause)
	}
	return c
}

func TestPowerOnStartsTheApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Board: "uno-r3", ID: "SN-0001", Image: appImage(t, "atmega328p", "1.0", 4096)})
		u.dev.SetPower(true)
		u.readUntil("uno-r3 firmware v1.0 (id SN-0001)\r\nready\r\n> ", time.Second)
		// optiboot does not answer: the application has the line.
		u.host.Write([]byte{avr.CmdGetSync, avr.SyncCRCEOP})
		if got := u.quiet(200 * time.Millisecond); bytes.Contains(got, []byte{avr.RespInSync, avr.RespOK}) {
			t.Fatalf("after power-on GET_SYNC was answered %q", got)
		}
		if st := u.m.Stats(); st.BootloaderRuns != 0 || st.AppRuns != 1 {
			t.Errorf("Stats() = %+v, want no bootloader run and one application run", st)
		}
		// A client that cannot reset the unit cannot sync.
		c := avr.New(u.host, avr.Options{SyncAttempts: 2})
		err := c.Sync(context.Background())
		var te *bootloader.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "without a reset hook") {
			t.Fatalf("Sync() without reset = %v, want a timeout that mentions the reset hook", err)
		}
	})
}

func TestBootloaderWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096)})
		u.dev.SetPower(true)
		u.readUntil("ready", time.Second)
		// One reset long before the host talks is not enough: optiboot's
		// watchdog starts the application after about a second.
		u.pulse(context.Background())
		time.Sleep(900 * time.Millisecond)
		if st := u.m.Stats(); st.BootloaderRuns != 1 || st.Watchdog != 0 {
			t.Fatalf("0.9 s after a reset Stats() = %+v, want optiboot still waiting", st)
		}
		u.readUntil("firmware v1.0", time.Second)
		if got, want := causes(u.dev.Boots()), []sim.Cause{sim.PowerOn, sim.External, sim.Software}; !equalCauses(got, want) {
			t.Fatalf("boots = %v, want %v", got, want)
		}
		// A client that resets inside each sync attempt gets in.
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() = %v", err)
		}
		p, err := c.Identify(ctx)
		if err != nil || p.Name != "ATmega328P" {
			t.Fatalf("Identify() = %v, %v; want ATmega328P", p, err)
		}
		if maj, min := c.Version(); maj != 8 || min != 3 {
			t.Errorf("Version() = %d.%d, want 8.3", maj, min)
		}
		// Traffic keeps optiboot listening: each byte restarts the watchdog.
		for range 5 {
			time.Sleep(800 * time.Millisecond)
			if _, err := c.ReadSignature(ctx); err != nil {
				t.Fatalf("ReadSignature() after 0.8 s of silence = %v", err)
			}
		}
	})
}

func TestStartUpDelayAfterReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096)})
		u.dev.SetPower(true)
		u.readUntil("ready", time.Second)
		// A GET_SYNC sent the moment reset is released is lost: the part is
		// still in its start-up time.
		u.pulse(context.Background())
		u.host.Write([]byte{avr.CmdGetSync, avr.SyncCRCEOP})
		if got := u.quiet(200 * time.Millisecond); len(got) != 0 {
			t.Fatalf("GET_SYNC during start-up was answered % X", got)
		}
		time.Sleep(time.Second) // let optiboot give up and start the application
		u.readUntil("ready", time.Second)
		tests := []struct {
			name   string
			delay  time.Duration
			resets int // reset pulses Sync needs; 0: it fails
		}{
			{"client waits out the start-up", 0, 1},
			// Its first GET_SYNC is lost, but it keeps sending them within
			// the reset's window, as avrdude does.
			{"client speaks at once", -1, 1},
		}
		for _, tt := range tests {
			resets := 0
			c := avr.New(u.host, avr.Options{ResetDelay: tt.delay, SyncAttempts: 3, Reset: func(ctx context.Context) error {
				resets++
				return u.pulse(ctx)
			}})
			err := c.Sync(context.Background())
			if tt.resets == 0 {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("%s: Sync() = %v, want a timeout", tt.name, err)
				}
				continue
			}
			if err != nil || resets != tt.resets {
				t.Errorf("%s: Sync() = %v after %d resets, want success after %d", tt.name, err, resets, tt.resets)
			}
		}
	})
}

func equalCauses(a, b []sim.Cause) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteVerifyAndBoot(t *testing.T) {
	tests := []struct {
		part string
		size int
	}{
		{"atmega328p", 0x7E00},       // all the space below optiboot
		{"atmega2560", 160*1024 + 6}, // across the 128 KiB boundary, last page partial
	}
	for _, tt := range tests {
		t.Run(tt.part, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, tt.part, Options{Board: "uno-r3", Image: appImage(t, tt.part, "1.0", 8192)})
				u.dev.SetPower(true)
				u.readUntil("v1.0", time.Second)
				c := u.client()
				ctx := context.Background()
				if err := c.Sync(ctx); err != nil {
					t.Fatalf("Sync() = %v", err)
				}
				p, err := c.Identify(ctx)
				if err != nil {
					t.Fatalf("Identify() = %v", err)
				}
				boot, _ := u.m.Flash().Read(uint32(p.BootStart()), p.BootSize)
				img := appImage(t, tt.part, "2.0", tt.size)
				var done, total int64
				if err := c.WritePages(ctx, 0, img, func(d, t int64) { done, total = d, t }); err != nil {
					t.Fatalf("WritePages() = %v", err)
				}
				if done != int64(len(img)) || total != int64(len(img)) {
					t.Errorf("last progress = %d/%d, want %d/%d", done, total, len(img), len(img))
				}
				if err := c.Verify(ctx, 0, img, nil); err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				snap := u.m.Flash().Snapshot()
				if !bytes.Equal(snap[:len(img)], img) {
					t.Fatal("flash does not hold the image")
				}
				padEnd := (len(img) + p.PageSize - 1) / p.PageSize * p.PageSize
				if pad := snap[len(img):padEnd]; !bytes.Equal(pad, bytes.Repeat([]byte{0xFF}, len(pad))) {
					t.Errorf("last page padding = % X, want 0xFF", pad)
				}
				if !bytes.Equal(snap[p.BootStart():], boot) {
					t.Error("optiboot's section changed")
				}
				if p.ExtendedAddressing() {
					// A read that ends on the 128 KiB boundary moves RAMPZ on;
					// the client must send the extended address again.
					got, err := c.ReadFlash(ctx, 0x1FF00, 512, nil)
					if err != nil || !bytes.Equal(got, img[0x1FF00:0x20100]) {
						t.Fatalf("ReadFlash(0x1FF00, 512) = %v, err %v; want the image bytes", len(got), err)
					}
					got, err = c.ReadFlash(ctx, 0x1FF00, 256, nil)
					if err != nil || !bytes.Equal(got, img[0x1FF00:0x20000]) {
						t.Fatalf("ReadFlash(0x1FF00, 256) err %v; want the image bytes", err)
					}
					got, err = c.ReadFlash(ctx, 2, 16, nil)
					if err != nil || !bytes.Equal(got, img[2:18]) {
						t.Fatalf("ReadFlash(2, 16) after a read up to 0x20000 = % X, %v; want % X", got, err, img[2:18])
					}
				}
				if err := c.Leave(ctx); err != nil {
					t.Fatalf("Leave() = %v", err)
				}
				u.readUntil("uno-r3 firmware v2.0", time.Second)
				if st := u.m.Stats(); st.PagesWritten != padEnd/p.PageSize || st.Watchdog != 1 {
					t.Errorf("Stats() = %+v, want %d pages written and one watchdog reset", st, padEnd/p.PageSize)
				}
			})
		})
	}
}

func TestVerifyCatchesAStuckBit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{})
		img := appImage(t, "atmega328p", "2.0", 8192)
		const addr = 0x1234
		u.m.StickBit(addr, 3, img[addr]&(1<<3) == 0) // stuck at the other level
		u.dev.SetPower(true)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WritePages(ctx, 0, img, nil); err != nil {
			t.Fatalf("WritePages() = %v", err)
		}
		err := c.Verify(ctx, 0, img, nil)
		var ve *avr.VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("Verify() = %v, want a *VerifyError", err)
		}
		if ve.Addr != addr || ve.Want != img[addr] || ve.Got != img[addr]^(1<<3) || ve.Mem != avr.Flash {
			t.Errorf("VerifyError = %+v, want flash at 0x%X, want %#x got %#x", ve, addr, img[addr], img[addr]^(1<<3))
		}
	})
}

func TestBadTerminatorResetsToTheApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096)})
		u.dev.SetPower(true)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		u.host.Write([]byte{avr.CmdGetParameter, avr.ParamSWMajor, 0x21})
		got := u.readUntil("firmware v1.0", time.Second)
		if bytes.HasPrefix([]byte(got), []byte{avr.RespInSync}) {
			t.Errorf("optiboot answered a command with a bad terminator: %q", got)
		}
		if st := u.m.Stats(); st.BadTerminators != 1 || st.Watchdog != 1 || st.AppRuns != 2 {
			t.Errorf("Stats() = %+v, want one bad terminator, one watchdog reset, the application started again", st)
		}
		// The client's view: the next command times out.
		if _, err := c.ReadSignature(ctx); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("ReadSignature() after the reset = %v, want a timeout", err)
		}
	})
}

func TestUnitThatStopsAnsweringTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{})
		u.dev.SetPower(true)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := c.WritePages(ctx, 0, appImage(t, "atmega328p", "2.0", 8192), func(done, _ int64) {
			if done == 8*128 {
				u.dev.SetPower(false) // the unit browns out mid-write
			}
		})
		var te *bootloader.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("WritePages() to a unit that lost power = %v, want a *bootloader.TimeoutError", err)
		}
		if waited := time.Since(start); waited > 3*time.Second {
			t.Errorf("WritePages() gave up after %v, want about the 1 s timeout", waited)
		}
		// A cancelled context ends a wait at once.
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := c.Sync(cctx); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Sync() with a 50 ms context = %v, want a deadline error", err)
		}
	})
}

func TestEEPROM(t *testing.T) {
	data := []byte("calibration: 1.0213 / serial SN-0042 / written by the station")
	t.Run("supported", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "atmega328p", Options{EEPROM: true})
			u.dev.SetPower(true)
			c := u.client()
			ctx := context.Background()
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Identify(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteEEPROM(ctx, 0x10, data, nil); err != nil {
				t.Fatalf("WriteEEPROM() = %v", err)
			}
			got, err := c.ReadEEPROM(ctx, 0x10, len(data))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadEEPROM() = %q, %v; want %q", got, err, data)
			}
			if e := u.m.EEPROM(); !bytes.Equal(e[0x10:0x10+len(data)], data) || e[0x0F] != 0xFF {
				t.Errorf("EEPROM holds %q", e[0x0F:0x10+len(data)])
			}
		})
	})
	t.Run("stock build", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			img := appImage(t, "atmega328p", "1.0", 4096)
			u := newUnit(t, "atmega328p", Options{Image: img})
			u.dev.SetPower(true)
			c := u.client()
			ctx := context.Background()
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Identify(ctx); err != nil {
				t.Fatal(err)
			}
			// Reading 'E' from the stock build returns flash.
			got, err := c.ReadEEPROM(ctx, 0x100, 16)
			if err != nil || !bytes.Equal(got, img[0x100:0x110]) {
				t.Errorf("ReadEEPROM(0x100) on the stock build = % X, %v; want the flash bytes % X", got, err, img[0x100:0x110])
			}
			// optiboot hangs after STK_INSYNC; a second later its watchdog
			// starts the application, whose banner ends the wait.
			err = c.WriteEEPROM(ctx, 0, data, nil)
			if !errors.Is(err, avr.ErrBadTerminator) || !strings.Contains(err.Error(), "EEPROM support") {
				t.Fatalf("WriteEEPROM() on the stock build = %v, want the banner instead of STK_OK and an explanation of the missing EEPROM support", err)
			}
			u.readUntil("firmware v1.0", 2*time.Second)
			if st := u.m.Stats(); st.Watchdog != 1 {
				t.Errorf("Stats() = %+v, want the watchdog to have reset the hung bootloader", st)
			}
		})
	})
}

func TestWritesOverOptibootAreIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{})
		u.dev.SetPower(true)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := c.Identify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := u.m.Flash().Snapshot()
		zeros := make([]byte, p.PageSize)
		// The raw commands succeed: optiboot does not know the lock bits
		// stopped the erase and the write.
		if err := c.LoadAddress(ctx, uint32(p.BootStart())/2); err != nil {
			t.Fatal(err)
		}
		if err := c.ProgPage(ctx, avr.Flash, zeros); err != nil {
			t.Fatalf("ProgPage() into optiboot = %v, want STK_OK", err)
		}
		if !bytes.Equal(u.m.Flash().Snapshot(), before) {
			t.Fatal("a page write into the locked boot section changed flash")
		}
		if st := u.m.Stats(); st.PagesIgnored != 1 || st.PagesWritten != 0 {
			t.Errorf("Stats() = %+v, want one ignored page", st)
		}
		// Only a read-back shows it.
		var ve *avr.VerifyError
		if err := c.Verify(ctx, uint32(p.BootStart()), zeros, nil); !errors.As(err, &ve) || ve.Addr != uint32(p.BootStart()) {
			t.Errorf("Verify() of the ignored page = %v, want a VerifyError at 0x%X", err, p.BootStart())
		}
	})
}

// exchange sends raw bytes and reads n answer bytes.
func (u *unit) exchange(out []byte, n int) []byte {
	u.t.Helper()
	u.host.Write(out)
	got := make([]byte, 0, n)
	buf := make([]byte, n)
	u.host.SetReadTimeout(time.Second)
	for len(got) < n {
		m, _ := u.host.Read(buf[:n-len(got)])
		if m == 0 {
			u.t.Fatalf("after % X the unit answered % X, want %d bytes", out, got, n)
		}
		got = append(got, buf[:m]...)
	}
	return got
}

// TestExtendedAddressing drives the 2560 model with raw bytes as avrdude
// sends them: RAMPZ comes from bit 15 of LOAD_ADDRESS and from Load
// Extended Address, and ELPM Z+ carries into it.
func TestExtendedAddressing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega2560", Options{Window: -1})
		flash := u.m.Flash()
		for _, a := range []uint32{0x00000, 0x10000, 0x1FF00, 0x20000, 0x30000} {
			flash.Load(a, []byte{byte(a >> 16), byte(a >> 8), 0xA5, 0x5A})
		}
		u.dev.SetPower(true)
		u.pulse(context.Background())
		time.Sleep(StartupDelay + time.Millisecond) // past the start-up time: a wake at the same instant races the model
		ok := []byte{avr.RespInSync, avr.RespOK}
		read4 := []byte{avr.CmdReadPage, 0, 4, 'F', avr.SyncCRCEOP}
		steps := []struct {
			name string
			out  []byte
			want []byte
		}{
			{"ext 0", []byte{avr.CmdUniversal, avr.OpLoadExtAddr, 0, 0, 0, avr.SyncCRCEOP}, []byte{avr.RespInSync, 0, avr.RespOK}},
			{"word 0x8000", []byte{avr.CmdLoadAddress, 0x00, 0x80, avr.SyncCRCEOP}, ok},
			{"read at 0x10000", read4, []byte{0x14, 0x01, 0x00, 0xA5, 0x5A, 0x10}},
			{"ext 1", []byte{avr.CmdUniversal, avr.OpLoadExtAddr, 0, 1, 0, avr.SyncCRCEOP}, []byte{avr.RespInSync, 0, avr.RespOK}},
			{"word 0x18000", []byte{avr.CmdLoadAddress, 0x00, 0x80, avr.SyncCRCEOP}, ok},
			{"read at 0x30000", read4, []byte{0x14, 0x03, 0x00, 0xA5, 0x5A, 0x10}},
			{"ext 0 again", []byte{avr.CmdUniversal, avr.OpLoadExtAddr, 0, 0, 0, avr.SyncCRCEOP}, []byte{avr.RespInSync, 0, avr.RespOK}},
			{"word 0xFF80", []byte{avr.CmdLoadAddress, 0x80, 0xFF, avr.SyncCRCEOP}, ok},
			{"read 0x1FF00-0x1FFFF", []byte{avr.CmdReadPage, 1, 0, 'F', avr.SyncCRCEOP}, nil},
			// RAMPZ is now 2: word 0 without a new extended address reads 0x20000.
			{"word 0", []byte{avr.CmdLoadAddress, 0, 0, avr.SyncCRCEOP}, ok},
			{"read at 0x20000", read4, []byte{0x14, 0x02, 0x00, 0xA5, 0x5A, 0x10}},
		}
		for _, s := range steps {
			n := len(s.want)
			if s.want == nil {
				n = 258
			}
			got := u.exchange(s.out, n)
			if s.want != nil && !bytes.Equal(got, s.want) {
				t.Fatalf("%s: % X answered % X, want % X", s.name, s.out, got, s.want)
			}
		}
	})
}

func TestBrokenApplications(t *testing.T) {
	tests := []struct {
		name  string
		image func(t *testing.T) []byte
		want  string
	}{
		{"erased", func(*testing.T) []byte { return bytes.Repeat([]byte{0xFF}, 4096) }, "no application image"},
		{"corrupt", func(t *testing.T) []byte {
			img := appImage(t, "atmega328p", "1.0", 4096)
			img[0x400] ^= 0x10
			return img
		}, "bad image checksum"},
		{"no jump", func(t *testing.T) []byte {
			// A well-formed descriptor behind a reset vector that is no JMP.
			img, err := sim.BuildApp([]byte{0xFF, 0xCF}, DescOffset, 4096, "1.0", "uno-r3")
			if err != nil {
				t.Fatal(err)
			}
			return img
		}, ErrNoResetVector.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				img := tt.image(t)
				u := newUnit(t, "atmega328p", Options{Image: img})
				u.dev.SetPower(true)
				u.readUntil("ATmega328P: "+tt.want, time.Second)
				// Like a blank chip, a broken application runs into optiboot,
				// which after an external reset keeps listening: a host can
				// sync after every timeout without another reset.
				u.pulse(context.Background())
				time.Sleep(3500 * time.Millisecond)
				if st := u.m.Stats(); st.BootloaderRuns < 2 {
					t.Errorf("Stats() = %+v, want optiboot entered again after the application failed", st)
				}
				c := avr.New(u.host, avr.Options{})
				if err := c.Sync(context.Background()); err != nil {
					t.Errorf("Sync() without a reset on a bricked unit = %v", err)
				}
			})
		})
	}
}

func TestAppImage(t *testing.T) {
	img, err := AppImage("m2560", "3.1.4", "mega", 1024)
	if err != nil {
		t.Fatal(err)
	}
	// 57 vectors of JMP; the reset vector jumps past the descriptor.
	if img[0] != 0x0C || img[1] != 0x94 || img[2] != 0xA0 || img[3] != 0x00 || img[56*4+1] != 0x94 {
		t.Errorf("vector table starts % X, want JMP 0x00A0 and 57 JMPs", img[:8])
	}
	d, err := sim.ParseApp(img, DescOffset)
	if err != nil || d.Version != "3.1.4" || d.Target != "mega" {
		t.Errorf("ParseApp(AppImage) = %+v, %v", d, err)
	}
	for _, tt := range []struct {
		part string
		size int
	}{{"atmega328p", 0x7E02}, {"atmega328p", 4097}, {"attiny85", 1024}, {"atmega328p", 100}} {
		if _, err := AppImage(tt.part, "1", "b", tt.size); err == nil {
			t.Errorf("AppImage(%q, size %d) succeeded, want an error", tt.part, tt.size)
		}
	}
	if _, err := New("atmega168", Options{}); err == nil || !strings.Contains(err.Error(), "atmega328p") {
		t.Errorf("New(atmega168) = %v, want an error listing the modelled parts", err)
	}
}
