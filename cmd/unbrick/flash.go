package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/station"
)

// runFlash writes one image to the unit on one port, verifies it and starts
// it, like stm32flash or esptool. The unit must be in its bootloader (or,
// for optiboot and the ESP ROM, reachable through the adapter's DTR/RTS).
// It exits 0 only after a verified write.
func runFlash(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flash", "--port PATH --protocol stm32|esprom|avr|uboot [--baud N] [--address A] IMAGE", stderr)
	portPath := fs.String("port", "", "the unit's serial port, e.g. /dev/ttyUSB0 or /dev/serial/by-path/...")
	protocol := fs.String("protocol", "", "the unit's bootloader: "+strings.Join(station.Protocols(), ", "))
	baud := fs.Int("baud", 115200, "the bootloader's baud rate")
	address := fs.String("address", "", "where the image goes (default: the start of the unit's flash, or the image's own addresses)")
	noErase := fs.Bool("no-erase", false, "do not erase before writing (the write then fails verification where flash was not blank)")
	noStart := fs.Bool("no-start", false, "leave the unit in its bootloader after verifying")
	opts := fs.String("options", "", "protocol options, key=value,... (e.g. storage=mmc,loadaddr=0x82000000 for uboot)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("give exactly one image file")
	}
	if *portPath == "" {
		return errors.New("--port is required")
	}
	drivers := station.Drivers()
	d := drivers[*protocol]
	if d == nil {
		return fmt.Errorf("--protocol %q: unknown; choose one of %s", *protocol, strings.Join(station.Protocols(), ", "))
	}
	img, imgAddr, err := station.LoadImage(fs.Arg(0))
	if err != nil {
		return err
	}
	plan := &jobs.Plan{Recipe: "flash", Protocol: *protocol, Port: jobs.Mode{Baud: *baud}, Options: map[string]string{}}
	if *protocol == "stm32" {
		plan.Port.Parity = "even"
	}
	for _, kv := range strings.Split(*opts, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			plan.Options[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	port, err := station.OpenPort(ctx, *portPath, plan.Port)
	if err != nil {
		return err
	}
	defer port.Close()

	bar := newBar(stdout)
	fmt.Fprintf(stdout, "unbrick flash: %s on %s at %d baud\n", *protocol, *portPath, *baud)
	reset := func(context.Context) error { return nil }
	if ml, ok := port.(bootloader.ModemLines); ok && *protocol == "avr" {
		warned := false
		reset = func(ctx context.Context) error {
			err := station.PulseDTR(ctx, ml)
			if err != nil && !warned {
				// A pseudo-terminal or a bare adapter: the unit must be
				// in its bootloader already (press its reset button).
				fmt.Fprintf(stderr, "unbrick flash: %v\n", err)
				warned = true
			}
			return nil
		}
	}
	t, id, err := d.Connect(ctx, port, plan, reset)
	if err != nil {
		return fmt.Errorf("connect to the %s bootloader on %s: %w", *protocol, *portPath, err)
	}
	fmt.Fprintf(stdout, "unit: %s", id.ChipName)
	if id.Serial != "" {
		fmt.Fprintf(stdout, ", serial %s", id.Serial)
	}
	fmt.Fprintln(stdout)
	addr := imgAddr
	if *address != "" {
		a, err := strconv.ParseUint(*address, 0, 32)
		if err != nil {
			return fmt.Errorf("--address %q: %w", *address, err)
		}
		addr = uint32(a)
	} else if addr == 0 && id.Flash.Size > 0 {
		addr = id.Flash.Start
	}
	r := jobs.Region{Start: addr, Size: uint32(len(img))}
	if id.Flash.Size > 0 && !r.Within(id.Flash) {
		return fmt.Errorf("the image (%s) does not fit the unit's flash %s", r, id.Flash)
	}
	if e, ok := t.(jobs.Eraser); ok && !*noErase {
		fmt.Fprintf(stdout, "erase %s\n", r)
		if err := e.Erase(ctx, r); err != nil {
			return fmt.Errorf("erase %s: %w", r, err)
		}
	}
	start := time.Now()
	if err := t.Write(ctx, addr, img, bar.progress("write ")); err != nil {
		bar.done()
		return fmt.Errorf("write at 0x%08X: %w", addr, err)
	}
	bar.done()
	if err := t.Verify(ctx, addr, img, bar.progress("verify")); err != nil {
		bar.done()
		return fmt.Errorf("verify: %w; the unit does NOT hold the image", err)
	}
	bar.done()
	fmt.Fprintf(stdout, "wrote and verified %d bytes at 0x%08X in %v\n", len(img), addr, time.Since(start).Round(10*time.Millisecond))
	if s, ok := t.(jobs.Starter); ok && !*noStart {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("the image is written and verified, but starting it failed: %w", err)
		}
		fmt.Fprintln(stdout, "started the application")
	}
	return nil
}

// bar draws a progress bar on a terminal, and plain lines elsewhere.
type bar struct {
	w    io.Writer
	tty  bool
	last int
	drew bool
}

func newBar(w io.Writer) *bar {
	b := &bar{w: w, last: -1}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

func (b *bar) progress(label string) bootloader.Progress {
	b.last = -1
	return func(done, total int64) {
		pct := int(done * 100 / max(total, 1))
		if pct == b.last {
			return
		}
		b.last = pct
		b.drew = true
		if b.tty {
			n := pct * 40 / 100
			fmt.Fprintf(b.w, "\r%s [%s%s] %3d%% %d/%d", label, strings.Repeat("#", n), strings.Repeat(".", 40-n), pct, done, total)
		} else if pct%25 == 0 {
			fmt.Fprintf(b.w, "%s %3d%% %d/%d\n", label, pct, done, total)
		}
	}
}

func (b *bar) done() {
	if b.tty && b.drew {
		fmt.Fprintln(b.w)
	}
	b.drew = false
}
