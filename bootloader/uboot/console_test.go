package uboot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

// The console traps of issue 9, each against the model made strict.

func TestBootdelayMinus2CannotBeStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, Env: map[string]string{"bootdelay": "-2"}})
		u.dev.SetPower(true)
		c := uboot.New(u.host, uboot.Options{StopWait: 3 * time.Second})
		if err := c.Stop(context.Background()); err == nil {
			t.Fatal("Stop() = nil on a unit with bootdelay=-2, want a failure naming bootdelay")
		} else if !strings.Contains(err.Error(), "-2") {
			t.Errorf("Stop() = %v, want it to name bootdelay -2", err)
		}
		if st := u.m.Stats(); st.Autoboots != 1 {
			t.Errorf("Stats().Autoboots = %d, want 1 (bootcmd ran without a countdown)", st.Autoboots)
		}
	})
}

func TestKeyedAutoboot(t *testing.T) {
	for _, tt := range []struct {
		name, stop string
		wantStop   bool
	}{
		{"any key does not stop it", "", false},
		{"the stop string does", "stop", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: 2 * time.Second, StopString: "stop"})
				u.dev.SetPower(true)
				c := uboot.New(u.host, uboot.Options{StopWait: 3 * time.Second, StopString: tt.stop})
				err := c.Stop(context.Background())
				if (err == nil) != tt.wantStop {
					t.Fatalf("Stop() with stop string %q = %v, want stopped %v", tt.stop, err, tt.wantStop)
				}
				if got := u.m.Stats().Autoboots; (got == 0) != tt.wantStop {
					t.Errorf("Stats().Autoboots = %d, want stopped %v", got, tt.wantStop)
				}
			})
		})
	}
}

func TestCustomPrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: time.Second, Prompt: "hmi> "})
		c := u.stopped(t, uboot.Options{Prompt: "hmi> "})
		if out, err := c.Run(context.Background(), "echo hi"); err != nil || out != "hi" {
			t.Errorf("Run(echo hi) = %q, %v", out, err)
		}
	})
}

// TestLineLength: the model keeps CONFIG_SYS_CBSIZE characters and beeps
// at the rest; a client told the board's size refuses a longer line, and a
// client told too large a size sees the echo differ and never presses
// Enter on a cut line.
func TestLineLength(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: time.Second, LineMax: 64})
		ctx := context.Background()
		c := u.stopped(t, uboot.Options{LineMax: 64})
		long := "setenv cut " + strings.Repeat("v", 40)
		if _, err := c.Run(ctx, long); err == nil || !strings.Contains(err.Error(), "CONFIG_SYS_CBSIZE") {
			t.Errorf("Run(%d characters) = %v, want a refusal naming CONFIG_SYS_CBSIZE", len(long), err)
		}
		c = uboot.New(u.host, uboot.Options{LineMax: 512})
		var pe *uboot.ProtocolError
		if _, err := c.Run(ctx, long); !errors.As(err, &pe) {
			t.Errorf("Run(%d characters) on a 64-character console = %v, want a ProtocolError about the echo", len(long), err)
		}
		if _, err := c.Env(ctx, "cut"); !errors.Is(err, uboot.ErrNotDefined) {
			t.Errorf("Env(cut) = %v, want ErrNotDefined: the cut line must not have run", err)
		}
	})
}

// TestStorageKinds writes and verifies through every storage kind of the
// model that real U-Boot's are held against, and reads what landed.
func TestStorageKinds(t *testing.T) {
	for _, kind := range []string{"virtio", "nvme", "scsi", "usb", "nor", "ram"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: time.Second, CFIFlash: true,
					Block: []ubootsim.BlockDevice{{Iface: "virtio", Size: 8 << 20}, {Iface: "nvme", Size: 8 << 20}, {Iface: "scsi", Size: 8 << 20}, {Iface: "usb", Size: 8 << 20}, {Iface: "usb", Size: 8 << 20}}})
				c := u.stopped(t, uboot.Options{})
				ctx := context.Background()
				img := payload(70_000, 21)
				off := int64(0x40000 + 3*512 + 17)
				st := uboot.Storage{Kind: kind, LoadAddr: ubootsim.KernelAddr}
				switch kind {
				case "usb":
					st.Dev = 1
				case "nor":
					st.Base = ubootsim.CFIBase
				case "ram":
					off = ubootsim.KernelAddr + 0x100000
				}
				if err := c.Write(ctx, st, off, img, nil); err != nil {
					t.Fatalf("Write(%s) = %v", kind, err)
				}
				if err := c.Verify(ctx, st, off, img, nil); err != nil {
					t.Fatalf("Verify(%s) = %v", kind, err)
				}
				var got []byte
				switch kind {
				case "nor":
					got, _ = u.m.CFI().Read(ubootsim.CFIBase+uint32(off), len(img))
				case "ram":
					got, _ = u.m.RAM(uint32(off), len(img))
				default:
					got, _ = u.m.Block(kind, st.Dev).Read(off, len(img))
				}
				if !bytes.Equal(got, img) {
					t.Errorf("%s does not hold the image after a verified write", kind)
				}
				if kind == "nor" {
					// A second write over programmed flash erases first.
					img2 := payload(70_000, 22)
					if err := c.Write(ctx, st, off, img2, nil); err != nil {
						t.Fatalf("second Write(nor) = %v", err)
					}
					if err := c.Verify(ctx, st, off, img2, nil); err != nil {
						t.Errorf("second Verify(nor) = %v", err)
					}
				}
			})
		})
	}
}

// TestPolledUART: a unit whose UART holds 16 typed characters drops the
// rest of a longer burst; the client sees the echo differ, discards the
// line with Ctrl-C and types it again in smaller chunks, so the command
// that runs is the one typed.
func TestPolledUART(t *testing.T) {
	for _, chunk := range []int{16, 64} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: time.Second, RxFIFO: 16})
				c := u.stopped(t, uboot.Options{Chunk: chunk})
				ctx := context.Background()
				if err := c.SetEnv(ctx, "typed_ok", "a-value-long-enough-to-need-several-chunks"); err != nil {
					t.Fatalf("SetEnv() = %v", err)
				}
				if v, err := c.Env(ctx, "typed_ok"); err != nil || v != "a-value-long-enough-to-need-several-chunks" {
					t.Errorf("Env(typed_ok) = %q, %v", v, err)
				}
				dropped := u.m.Stats().RxDropped
				if chunk > 17 && dropped == 0 {
					t.Errorf("Stats().RxDropped = 0 with %d-character chunks into a 16-byte FIFO, want losses the client recovered from", chunk)
				}
				if chunk <= 16 && dropped != 0 {
					t.Errorf("Stats().RxDropped = %d with %d-character chunks, want none", dropped, chunk)
				}
			})
		})
	}
}
