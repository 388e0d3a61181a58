package uboot_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

// TestLoadAtRate loads with loady ADDR BAUD: U-Boot switches its UART for
// the transfer and back, and the console answers at its own rate after.
// A UART whose clock cannot divide down to the rate (48 MHz into 921600
// gives 1 Mbit/s, 8.5% off) never sees the CR: the client says the unit is
// stuck, for the driver to reset it and fall back.
func TestLoadAtRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clock int
		baud  int
		got   int  // the rate the model's loady ran at
		stuck bool // a RateError that needs a reset
	}{
		{"exact clock 921600", 0, 921600, 921600, false},
		{"48 MHz clock 230400", 48_000_000, 230400, 230769, false},
		{"48 MHz clock 921600", 48_000_000, 921600, 0, true},
		{"console rate", 48_000_000, 115200, 115384, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, UARTClock: tc.clock})
				u.host.SetBaud(115200)
				c := u.stopped(t, uboot.Options{})
				c.SetLoadBaud(tc.baud)
				ctx := context.Background()
				data := payload(20<<10, 3)
				err := c.Load(ctx, ubootsim.KernelAddr, data, nil)
				var re *uboot.RateError
				if tc.stuck {
					if !errors.As(err, &re) || !re.Stuck {
						t.Fatalf("Load() at %d = %v, want a RateError that needs a reset", tc.baud, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Load() at %d = %v", tc.baud, err)
				}
				if st := u.m.Stats(); st.LoadyBytes != len(data) || (tc.baud != 115200 && st.LoadyBaud != tc.got) {
					t.Errorf("loady stored %d bytes at %d bps, want %d at %d", st.LoadyBytes, st.LoadyBaud, len(data), tc.got)
				}
				if _, err := c.Run(ctx, "version"); err != nil {
					t.Errorf("Run(version) after the load = %v: the console is not back at its rate", err)
				}
			})
		})
	}
}
