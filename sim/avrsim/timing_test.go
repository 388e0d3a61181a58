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

	"github.com/unbrick/unbrick/bootloader/avr"
)

// TestLEDFlashesDeafStart: optiboot built with LED_START_FLASHES=3 reads
// nothing for 375 ms after its start-up time, keeping only what the USART
// holds. A client that resets again after 400 ms never gets in; one that
// keeps sending GET_SYNC within the reset's window does, with one reset,
// and realigns the framing the held bytes broke.
func TestLEDFlashesDeafStart(t *testing.T) {
	tests := []struct {
		name   string
		opts   avr.Options
		resets int // 0: Sync must fail
	}{
		{"a new reset every 400 ms", avr.Options{SyncWindow: time.Nanosecond, SyncWait: 300 * time.Millisecond, SyncAttempts: 4}, 0},
		{"GET_SYNC for the whole window", avr.Options{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096), LEDFlashes: 3})
				u.dev.SetPower(true)
				u.readUntil("ready", time.Second)
				resets := 0
				o := tt.opts
				o.Reset = func(ctx context.Context) error {
					resets++
					return u.pulse(ctx)
				}
				c := avr.New(u.host, o)
				ctx := context.Background()
				err := c.Sync(ctx)
				if tt.resets == 0 {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("Sync() = %v, want a timeout", err)
					}
					return
				}
				if err != nil || resets != tt.resets {
					t.Fatalf("Sync() = %v after %d resets, want success after %d", err, resets, tt.resets)
				}
				// The framing holds: a whole session works.
				if _, err := c.Identify(ctx); err != nil {
					t.Fatalf("Identify() after Sync = %v", err)
				}
				img := appImage(t, "atmega328p", "2.0", 1024)
				if err := c.WritePages(ctx, 0, img, nil); err != nil {
					t.Fatalf("WritePages() = %v", err)
				}
				if err := c.Verify(ctx, 0, img, nil); err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				if st := u.m.Stats(); st.BadTerminators != 0 {
					t.Errorf("Stats() = %+v, want no bad terminator", st)
				}
			})
		})
	}
}

// TestUSARTHoldsThreeBytes: while optiboot flashes its LED, the USART keeps
// two bytes in its buffer and one in its shift register; later ones are
// lost. Two GET_SYNCs sent then leave one answer and a pending 0x30, which
// a lone terminator completes.
func TestUSARTHoldsThreeBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{LEDFlashes: 3, Window: -1})
		u.dev.SetPower(true)
		u.pulse(context.Background())
		time.Sleep(StartupDelay + 10*time.Millisecond)
		u.host.Write([]byte{0x30, 0x20, 0x30, 0x20})
		if got := u.quiet(600 * time.Millisecond); !bytes.Equal(got, []byte{0x14, 0x10}) {
			t.Fatalf("two GET_SYNCs during the LED flashes were answered % X, want 14 10 once", got)
		}
		u.host.Write([]byte{0x20})
		if got := u.quiet(50 * time.Millisecond); !bytes.Equal(got, []byte{0x14, 0x10}) {
			t.Fatalf("a lone 0x20 after that was answered % X, want 14 10 (it completes the held 0x30)", got)
		}
	})
}

// TestFramingErrorsDoNotFeedTheWatchdog: bytes at the wrong rate arrive
// with framing errors, which do not restart optiboot's watchdog: it starts
// the application after its window however much such traffic arrives,
// while the same traffic at the right rate keeps it listening.
func TestFramingErrorsDoNotFeedTheWatchdog(t *testing.T) {
	for _, tt := range []struct {
		name     string
		baud     int
		first    byte // arrives as SET_DEVICE (0x42), which then waits for 20 bytes
		watchdog int
	}{
		{"right rate", 115200, 0x42, 0},
		// The line model garbles a byte at the wrong rate; 0xFC arrives as
		// 0x42, so optiboot sees the same command as above.
		{"wrong rate", 57600, 0xFC, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096)})
				u.host.SetBaud(tt.baud)
				u.dev.SetPower(true)
				time.Sleep(100 * time.Millisecond) // the application starts after a power-on reset
				u.pulse(context.Background())
				time.Sleep(StartupDelay + 10*time.Millisecond)
				u.host.Write([]byte{tt.first})
				for range 10 {
					time.Sleep(300 * time.Millisecond)
					u.host.Write([]byte{0x00}) // SET_DEVICE's arguments, slowly
				}
				if st := u.m.Stats(); st.Watchdog != tt.watchdog || st.BadTerminators != 0 {
					t.Fatalf("after 3 s of a byte every 300 ms at %d baud: Stats() = %+v, want %d watchdog resets and no bad terminator", tt.baud, st, tt.watchdog)
				}
			})
		})
	}
}

// TestOlderWindow: optiboot builds before the 1 s watchdog wait 500 ms;
// the client's GET_SYNCs, one every 250 ms, reach them, also behind the LED
// flashes.
func TestOlderWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Image: appImage(t, "atmega328p", "1.0", 4096), Window: 500 * time.Millisecond, LEDFlashes: 3})
		u.dev.SetPower(true)
		u.readUntil("ready", time.Second)
		// The window: 500 ms after a reset's flashes, without traffic, the
		// application runs.
		u.pulse(context.Background())
		time.Sleep(StartupDelay + 375*time.Millisecond + 450*time.Millisecond)
		if st := u.m.Stats(); st.Watchdog != 0 {
			t.Fatalf("450 ms after the flashes Stats() = %+v, want optiboot still waiting", st)
		}
		time.Sleep(100 * time.Millisecond)
		if st := u.m.Stats(); st.Watchdog != 1 {
			t.Fatalf("550 ms after the flashes Stats() = %+v, want the watchdog to have started the application", st)
		}
		u.readUntil("ready", time.Second)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() = %v", err)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatalf("Identify() = %v", err)
		}
	})
}

// TestEEPROMWriteRefusedOnOptiboot4: optiboot 4.x drops PROG_PAGE's memory
// type, so EEPROM data would land in flash (TestDifferentialOptiboot holds
// the model to that); the client refuses to send it.
func TestEEPROMWriteRefusedOnOptiboot4(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Major: 4, Minor: 4, Image: appImage(t, "atmega328p", "1.0", 4096)})
		u.dev.SetPower(true)
		u.readUntil("ready", time.Second)
		c := u.client()
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		before := u.m.Flash().Snapshot()
		err := c.WriteEEPROM(ctx, 0, []byte{1, 2, 3, 4}, nil)
		if err == nil || !strings.Contains(err.Error(), "would write these bytes into flash") {
			t.Fatalf("WriteEEPROM() through optiboot 4.4 = %v, want a refusal", err)
		}
		if !bytes.Equal(u.m.Flash().Snapshot(), before) || u.m.Stats().PagesWritten != 0 {
			t.Error("the refused EEPROM write changed the flash")
		}
	})
}
