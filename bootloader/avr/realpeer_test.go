package avr_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/serialport"
)

// openOptiboot starts a real optiboot build on simavr and opens its
// pseudo-terminal at 115200.
func openOptiboot(t *testing.T, build string) (*peertest.Optiboot, *serialport.Port) {
	t.Helper()
	o := peertest.StartOptiboot(t, build)
	p, err := serialport.Open(o.Path, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatalf("open %s: %v", o.Path, err)
	}
	t.Cleanup(func() { p.Close() })
	return o, p
}

// avrdudeRead reads the ATmega328P's whole flash through avrdude -c arduino
// into a raw file and returns it padded with 0xFF to 32 KiB (avrdude drops
// trailing 0xFF from raw output).
func avrdudeRead(t *testing.T, path string) []byte {
	t.Helper()
	avrdude := peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})[0]
	out := filepath.Join(t.TempDir(), "read.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, avrdude, "-c", "arduino", "-p", "m328p", "-P", path, "-b", "115200",
		"-U", "flash:r:"+out+":r").CombinedOutput()
	if err != nil {
		t.Fatalf("avrdude read: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 32*1024 {
		t.Fatalf("avrdude read %d bytes from a 32 KiB part", len(got))
	}
	return append(got, bytes.Repeat([]byte{0xFF}, 32*1024-len(got))...)
}

// TestRealOptiboot writes and verifies an application through real
// optiboot (each of the three builds) with this package's client, and
// avrdude reads the flash back.
func TestRealOptiboot(t *testing.T) {
	for _, build := range peertest.OptibootBuilds {
		t.Run(build, func(t *testing.T) {
			peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
			if peertest.OptibootRefused(t, build) {
				return
			}
			o, port := openOptiboot(t, build)
			ctx := context.Background()
			c := avr.New(port, avr.Options{Reset: func(context.Context) error { return o.Reset() }})
			if err := c.Sync(ctx); err != nil {
				t.Fatalf("Sync() = %v", err)
			}
			p, err := c.Identify(ctx)
			if err != nil || p.Name != "ATmega328P" {
				t.Fatalf("Identify() = %v, %v; want ATmega328P", p, err)
			}
			// Debian's optiboot.c and Arduino's prebuilt hex are optiboot 4.4.
			if maj, min := c.Version(); maj != 4 || min != 4 {
				t.Errorf("Version() = %d.%d, want 4.4", maj, min)
			}
			r := rand.New(rand.NewPCG(7, uint64(len(build))))
			img := make([]byte, 5000) // 39 pages and a part
			for i := range img {
				img[i] = byte(r.Uint32())
			}
			const at = 0x0400
			if err := c.WritePages(ctx, at, img, nil); err != nil {
				t.Fatalf("WritePages(0x%X, %d bytes) = %v", at, len(img), err)
			}
			if err := c.Verify(ctx, at, img, nil); err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			// The client's verify must fail where the flash differs.
			bad := append([]byte(nil), img...)
			bad[1234] ^= 0x40
			if err := c.Verify(ctx, at, bad, nil); err == nil {
				t.Fatal("Verify() of altered data = nil, want a *VerifyError")
			}
			// A sparse image over it, reaching past it into blank flash:
			// its 0xFF pages over the old image must be sent (optiboot
			// erases only the pages it is sent), those over blank flash
			// need not be, and the flash must end up as the image.
			img = make([]byte, 8000)
			for i := range img {
				if i/128%2 == 1 {
					img[i] = 0xFF
				} else {
					img[i] = byte(r.Uint32())
				}
			}
			if err := c.WritePages(ctx, at, img, nil); err != nil {
				t.Fatalf("WritePages(0x%X, sparse %d bytes) = %v", at, len(img), err)
			}
			if c.SkippedPages() == 0 {
				t.Error("SkippedPages() = 0 after a sparse image over blank flash, want some")
			}
			if err := c.Verify(ctx, at, img, nil); err != nil {
				t.Fatalf("Verify(sparse) = %v", err)
			}
			if err := c.Leave(ctx); err != nil {
				t.Fatalf("Leave() = %v", err)
			}
			port.Close()

			flash := avrdudeRead(t, o.Path)
			want := bytes.Repeat([]byte{0xFF}, 32*1024)
			copy(want[at:], img)
			for i := at + len(img); i < at+(len(img)+127)/128*128; i++ {
				want[i] = 0xFF // the client pads the last page with 0xFF
			}
			if !bytes.Equal(flash[:0x7C00], want[:0x7C00]) {
				i := 0
				for flash[i] == want[i] {
					i++
				}
				t.Fatalf("avrdude read 0x%04X = 0x%02X, want 0x%02X", i, flash[i], want[i])
			}
			if !strings.Contains(o.Output(), "uart0:") {
				t.Errorf("harness output lacks its port line:\n%s", o.Output())
			}
		})
	}
}

// TestRealOptibootDeafStart holds the client's sync against real optiboot
// built with LED_START_FLASHES=3 (Arduino's stock build and the source build
// with that value): after each reset it flashes its LED for about 375 ms
// before it reads the UART. The client resets once and keeps sending
// GET_SYNC through that time. (simavr resets at once, without the 65 ms
// start-up time of a board's fuses.)
func TestRealOptibootDeafStart(t *testing.T) {
	for _, build := range []string{peertest.OptibootFlashes, peertest.OptibootStock} {
		t.Run(build, func(t *testing.T) {
			if peertest.OptibootRefused(t, build) {
				return
			}
			o, port := openOptiboot(t, build)
			ctx := context.Background()
			resets := 0
			// Each GET_SYNC waits 100 ms, well under the deaf 375 ms: only
			// a client that goes on sending after one reset gets in. Several
			// GET_SYNCs wait in the UART, so this also realigns the framing
			// against the real thing.
			// The window is longer than the 1.2 s default so that simavr
			// falling behind real time on a loaded machine does not cost a
			// second reset.
			c := avr.New(port, avr.Options{SyncWait: 100 * time.Millisecond, SyncWindow: 3 * time.Second, Reset: func(context.Context) error {
				resets++
				return o.Reset()
			}})
			for i := range 3 {
				start := time.Now()
				if err := c.Sync(ctx); err != nil {
					t.Fatalf("Sync() #%d = %v", i+1, err)
				}
				t.Logf("Sync() #%d: %v from the reset", i+1, time.Since(start).Round(time.Millisecond))
				if _, err := c.ReadSignature(ctx); err != nil {
					t.Fatalf("ReadSignature() after Sync #%d = %v", i+1, err)
				}
			}
			if resets != 3 {
				t.Errorf("three Syncs took %d resets, want one each", resets)
			}
		})
	}
}

// avrdudeDump reads n bytes of flash from addr through avrdude's terminal
// (`dump flash ADDR N`) with the given programmer and part.
func avrdudeDump(t *testing.T, programmer, part, port string, addr, n int) []byte {
	t.Helper()
	avrdude := peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, avrdude, "-c", programmer, "-p", part, "-P", port, "-b", "115200", "-t")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("dump flash 0x%x %d\nquit\n", addr, n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("avrdude -t dump: %v\n%s", err, out)
	}
	got := make([]byte, 0, n)
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || len(got) >= n {
			continue
		}
		var a int
		if _, err := fmt.Sscanf(f[0], "%x", &a); err != nil || a != addr+len(got) || len(f[0]) < 4 {
			continue
		}
		for _, h := range f[1:] {
			if h == "|" || strings.HasPrefix(h, "|") {
				break
			}
			var b byte
			if _, err := fmt.Sscanf(h, "%02x", &b); err != nil {
				break
			}
			got = append(got, b)
		}
	}
	if len(got) < n {
		t.Fatalf("avrdude dumped %d of %d bytes:\n%s", len(got), n, out)
	}
	return got[:n]
}

// TestRealWiring writes and verifies through the Arduino Mega 2560's real
// STK500v2 bootloader on simavr with WiringClient, and avrdude -c wiring
// reads the flash back. A second session writes above the first, after a
// reset: the client walks the bootloader's erase pointer over the pages
// below with their own contents, which must survive.
func TestRealWiring(t *testing.T) {
	o := peertest.StartOptiboot(t, peertest.WiringMega2560)
	port, err := serialport.Open(o.Path, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := avr.NewWiring(port, avr.Options{Reset: func(context.Context) error { return o.Reset() }})
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("Sync() = %v", err)
	}
	p, err := c.Identify(ctx)
	if err != nil || p.Name != "ATmega2560" || p.BootStart() != 0x3E000 {
		t.Fatalf("Identify() = %v (boot at 0x%X), %v; want the ATmega2560 with its boot section at 0x3E000", p, p.BootStart(), err)
	}
	first := make([]byte, 0x300)
	for i := range first {
		first[i] = byte(i*5 + 1)
	}
	if err := c.WritePages(ctx, 0, first, nil); err != nil {
		t.Fatalf("WritePages(0) = %v", err)
	}
	if err := c.Verify(ctx, 0, first, nil); err != nil {
		t.Fatalf("Verify(0) = %v", err)
	}
	// The erase pointer is past page 0 now.
	if err := c.WritePages(ctx, 0, first[:256], nil); err == nil {
		t.Fatal("WritePages(0) again in the same session = nil, want a refusal")
	}
	// Second session, after a reset.
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("Sync() #2 = %v", err)
	}
	if _, err := c.Identify(ctx); err != nil {
		t.Fatal(err)
	}
	second := make([]byte, 0x180)
	for i := range second {
		second[i] = byte(0xA0 ^ i)
	}
	if err := c.WritePages(ctx, 0x400, second, nil); err != nil {
		t.Fatalf("WritePages(0x400) = %v", err)
	}
	if err := c.Verify(ctx, 0x400, second, nil); err != nil {
		t.Fatalf("Verify(0x400) = %v", err)
	}
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave() = %v", err)
	}
	port.Close()
	want := bytes.Repeat([]byte{0xFF}, 0x600)
	copy(want, first)
	copy(want[0x400:], second)
	got := avrdudeDump(t, "wiring", "m2560", o.Path, 0, 0x600)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("avrdude -c wiring read 0x%04X = 0x%02X, want 0x%02X", i, got[i], want[i])
		}
	}
}
