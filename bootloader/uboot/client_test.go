package uboot_test

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

const board = "hmi-a"

type unit struct {
	host *sim.PipeHost
	dev  *sim.Device
	m    *ubootsim.Model
}

func newUnit(t *testing.T, o ubootsim.Options) *unit {
	t.Helper()
	if o.Serial == "" {
		o.Serial = "HMI-000042"
	}
	if o.BootDelay == 0 {
		o.BootDelay = 2 * time.Second
	}
	m, err := ubootsim.New(board, o)
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(pd)
	d := sim.NewDevice(board, m, line)
	t.Cleanup(d.Close)
	return &unit{host: host, dev: d, m: m}
}

func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// stopped powers the unit and returns a client at its prompt.
func (u *unit) stopped(t *testing.T, o uboot.Options) *uboot.Client {
	t.Helper()
	u.dev.SetPower(true)
	c := uboot.New(u.host, o)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	return c
}

func TestStopAndRun(t *testing.T) {
	for _, delay := range []time.Duration{-1, time.Second, 3 * time.Second} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, BootDelay: delay})
				c := u.stopped(t, uboot.Options{})
				ctx := context.Background()
				if st := u.m.Stats(); st.Autoboots != 0 {
					t.Fatalf("Stats() = %+v after Stop, want no autoboot", st)
				}
				if v, err := c.Env(ctx, "serial#"); err != nil || v != "HMI-000042" {
					t.Errorf("Env(serial#) = %q, %v; want HMI-000042", v, err)
				}
				if _, err := c.Env(ctx, "nothere"); !errors.Is(err, uboot.ErrNotDefined) {
					t.Errorf("Env(nothere) = %v, want ErrNotDefined", err)
				}
				out, err := c.Run(ctx, "false")
				var ce *uboot.CommandError
				if !errors.As(err, &ce) || ce.Cmd != "false" || out != "" {
					t.Errorf("Run(false) = %q, %v; want a CommandError and no output", out, err)
				}
				// Output that holds "=> " (crc32's "==> ") does not end a command early.
				out, err = c.Run(ctx, "crc32 82000000 10; echo after")
				if err != nil || !strings.Contains(out, "==> ") || !strings.HasSuffix(out, "after") {
					t.Errorf("Run(crc32; echo after) = %q, %v; want the crc32 line then \"after\"", out, err)
				}
				// Nor does a line of output that is exactly the prompt.
				out, err = c.Run(ctx, `echo "=> "; echo "==> "; echo last`)
				if want := "=> \r\n==> \r\nlast"; err != nil || out != want {
					t.Errorf("Run(echo prompts) = %q, %v; want %q", out, err, want)
				}
				if err := c.SetEnv(ctx, "x", "a b"); err != nil {
					t.Fatal(err)
				}
				if out, err := c.Run(ctx, "echo ${x}"); err != nil || out != "a b" {
					t.Errorf("Run(echo ${x}) = %q, %v; want \"a b\"", out, err)
				}
				// Stop again on a unit already at its prompt.
				if err := c.Stop(ctx); err != nil {
					t.Errorf("Stop() at the prompt = %v", err)
				}
			})
		})
	}
}

func TestStopFailsOnAUnitThatBoots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
		u.dev.SetPower(true)
		// Too late: the countdown is over and Linux runs.
		time.Sleep(5 * time.Second)
		c := uboot.New(u.host, uboot.Options{StopWait: 3 * time.Second})
		err := c.Stop(context.Background())
		var te *bootloader.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "autoboot not stopped") {
			t.Fatalf("Stop() on a booted unit = %v, want a timeout that says autoboot was not stopped", err)
		}
	})
}

func TestWriteVerifyReadMMC(t *testing.T) {
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"aligned", 0x300000, 8 << 10},
		{"unaligned head", 0x300000 + 100, 3000},
		{"unaligned both", 0x300000 + 511, 1026},
		{"inside one block", 0x300000 + 10, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
				old := payload(64<<10, 1)
				u.m.EMMC().WriteAt(old, 0x300000-0x4000)
				c := u.stopped(t, uboot.Options{})
				ctx := context.Background()
				st := uboot.Storage{Kind: "mmc", LoadAddr: ubootsim.KernelAddr}
				data := payload(tt.n, 2)
				var last int64
				if err := c.Write(ctx, st, tt.off, data, func(done, total int64) { last = done }); err != nil {
					t.Fatalf("Write() = %v", err)
				}
				if last != int64(tt.n) {
					t.Errorf("progress ended at %d, want %d", last, tt.n)
				}
				want := append([]byte(nil), old...)
				copy(want[tt.off-(0x300000-0x4000):], data)
				if got, _ := u.m.EMMC().Read(0x300000-0x4000, len(old)); !bytes.Equal(got, want) {
					t.Fatalf("eMMC after Write() differs: the data or its neighbours are wrong")
				}
				if err := c.Verify(ctx, st, tt.off, data, nil); err != nil {
					t.Errorf("Verify() = %v", err)
				}
				got, err := c.Read(ctx, st, tt.off, tt.n, nil)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("Read() = %d bytes, %v; want what was written", len(got), err)
				}
				// Damage one byte: Verify must say so.
				u.m.EMMC().WriteAt([]byte{^data[tt.n/2]}, tt.off+int64(tt.n/2))
				err = c.Verify(ctx, st, tt.off, data, nil)
				var ve *uboot.VerifyError
				if !errors.As(err, &ve) || ve.Want != crc32.ChecksumIEEE(data) || ve.Offset != tt.off {
					t.Errorf("Verify() of damaged storage = %v, want a VerifyError at %#x", err, tt.off)
				}
			})
		})
	}
}

func TestWriteVerifySF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}, SPIFlash: true})
		old := payload(256<<10, 3)
		u.m.NOR().Load(0, old)
		c := u.stopped(t, uboot.Options{})
		ctx := context.Background()
		st := uboot.Storage{Kind: "sf", LoadAddr: ubootsim.KernelAddr}
		data := payload(70000, 4)
		const off = 0x10000 + 1234
		if err := c.Write(ctx, st, off, data, nil); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		want := append([]byte(nil), old...)
		copy(want[off:], data)
		if got, _ := u.m.NOR().Read(0, len(old)); !bytes.Equal(got, want) {
			t.Fatal("NOR after Write() differs: the data or the rest of its erase blocks are wrong")
		}
		if err := c.Verify(ctx, st, off, data, nil); err != nil {
			t.Errorf("Verify() = %v", err)
		}
		if got, err := c.Read(ctx, st, off, 5000, nil); err != nil || !bytes.Equal(got, data[:5000]) {
			t.Errorf("Read() = %d bytes, %v; want the first 5000 bytes written", len(got), err)
		}
	})
}

func TestStorageWithoutSF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
		c := u.stopped(t, uboot.Options{})
		err := c.Write(context.Background(), uboot.Storage{Kind: "sf", LoadAddr: ubootsim.KernelAddr}, 0, []byte{1}, nil)
		var ce *uboot.CommandError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Failed to initialize SPI flash") {
			t.Errorf("Write() to a unit without SPI flash = %v, want sf probe's failure", err)
		}
		if err := c.Write(context.Background(), uboot.Storage{Kind: "nand", LoadAddr: 1}, 0, []byte{1}, nil); err == nil {
			t.Error("Write() to nand = nil, want an error")
		}
	})
}

// TestRecoverBrickedUnit rewrites a bricked unit's slot and boots it.
func TestRecoverBrickedUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{Layout: ubootsim.BenchLayout, A: ubootsim.SlotImage{Version: "1.0", Fault: ubootsim.BadKernelCRC}})
		c := u.stopped(t, uboot.Options{})
		ctx := context.Background()
		img, off, err := ubootsim.Bundle("2.0", board, ubootsim.BenchLayout, "a")
		if err != nil {
			t.Fatal(err)
		}
		st := uboot.Storage{Kind: "mmc", LoadAddr: ubootsim.KernelAddr}
		if err := c.Write(ctx, st, off, img, nil); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		if err := c.Verify(ctx, st, off, img, nil); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
		if err := c.Boot(ctx); err != nil {
			t.Fatalf("Boot() = %v", err)
		}
		expect(t, u.host, "hmi-a firmware v2.0 (id HMI-000042)", 10*time.Second)
	})
}

func TestBootSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0", Fault: ubootsim.CorruptRootFS}, B: ubootsim.SlotImage{Version: "0.9"}})
		c := u.stopped(t, uboot.Options{})
		if err := c.BootSlot(context.Background(), "b"); err != nil {
			t.Fatalf("BootSlot(b) = %v", err)
		}
		expect(t, u.host, "hmi-a firmware v0.9", 10*time.Second)
		if env, err := u.m.Env(); err != nil || env["boot_slot"] != "b" {
			t.Errorf("stored boot_slot = %q, %v; want b", env["boot_slot"], err)
		}
	})
}

// TestUnitStopsMidTransfer: a unit that loses power during loady ends the
// write in a clear error within the YMODEM timeouts, never a hang.
func TestUnitStopsMidTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
		c := u.stopped(t, uboot.Options{})
		data := payload(64<<10, 5)
		start := time.Now()
		err := c.Write(context.Background(), uboot.Storage{Kind: "mmc", LoadAddr: ubootsim.KernelAddr}, 0x300000, data,
			func(done, total int64) {
				if done >= 20<<10 && u.dev.Powered() {
					u.dev.SetPower(false)
				}
			})
		if err == nil {
			t.Fatal("Write() to a unit that lost power = nil, want an error")
		}
		if !strings.Contains(err.Error(), "loady") || !strings.Contains(err.Error(), "YMODEM") {
			t.Errorf("Write() = %v, want it to name loady and the YMODEM transfer", err)
		}
		t.Logf("Write() after power loss = %v after %v", err, time.Since(start))
		if d := time.Since(start); d > 60*time.Second {
			t.Errorf("Write() took %v to give up, want under a minute", d)
		}
	})
}

func TestContextCancelEndsStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
		_ = u // never powered: nothing answers
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := uboot.New(u.host, uboot.Options{}).Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Stop() with a cancelled context = %v, want the context's error", err)
		}
	})
}

// expect reads the host side until want arrives.
func expect(t *testing.T, h *sim.PipeHost, want string, within time.Duration) {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	h.SetReadTimeout(50 * time.Millisecond)
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		n, _ := h.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return
		}
	}
	t.Fatalf("after %v the unit sent %q, want %q", within, got, want)
}

// TestCancelMidTransferThenRecover: a write cancelled mid-transfer ends at
// once with the context's error; the unit, still at loady, takes the
// sender's CANs and the client gets its prompt back with Stop.
func TestCancelMidTransferThenRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, ubootsim.Options{A: ubootsim.SlotImage{Version: "1.0"}})
		c := u.stopped(t, uboot.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		data := payload(64<<10, 6)
		st := uboot.Storage{Kind: "mmc", LoadAddr: ubootsim.KernelAddr}
		err := c.Write(ctx, st, 0x300000, data, func(done, total int64) {
			if done >= 10<<10 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Write() cancelled mid-transfer = %v, want context.Canceled", err)
		}
		if err := c.Stop(context.Background()); err != nil {
			t.Fatalf("Stop() after the cancelled transfer = %v", err)
		}
		if out, err := c.Run(context.Background(), "echo still here"); err != nil || out != "still here" {
			t.Errorf("Run(echo) after recovery = %q, %v", out, err)
		}
		if err := c.Write(context.Background(), st, 0x300000, data, nil); err != nil {
			t.Fatalf("Write() after recovery = %v", err)
		}
		if got, _ := u.m.EMMC().Read(0x300000, len(data)); !bytes.Equal(got, data) {
			t.Error("the eMMC does not hold the data written after recovery")
		}
	})
}
