package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/station"
)

// runFlash writes one image to the unit on one port, verifies it and starts
// it, like stm32flash or esptool. The unit must be in its bootloader (or,
// for optiboot and the ESP ROM, reachable through the adapter's DTR/RTS).
// The image is raw, Intel HEX or ELF, told by its content; each of its
// segments goes to its own address. It exits 0 only after a write that was
// verified, or, where the bootloader cannot verify, after saying so.
func runFlash(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flash", "--port PATH --protocol stm32|esprom|avr|uboot [--baud N] [--address A] IMAGE", stderr)
	portPath := fs.String("port", "", "the unit's serial port, e.g. /dev/ttyUSB0 or /dev/serial/by-path/...")
	protocol := fs.String("protocol", "", "the unit's bootloader: "+strings.Join(station.Protocols(), ", "))
	baud := fs.Int("baud", 115200, "the bootloader's baud rate")
	address := fs.String("address", "", "where a raw image goes (default: the start of the unit's flash); Intel HEX and ELF images carry their own addresses")
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
	path := fs.Arg(0)
	im, err := station.LoadImage(path)
	if err != nil {
		return err
	}
	var rawAt *uint32
	if *address != "" {
		a, err := strconv.ParseUint(*address, 0, 32)
		if err != nil {
			return fmt.Errorf("--address %q: %w", *address, err)
		}
		if im.Format != firmware.Raw {
			start, end := im.Bounds()
			return fmt.Errorf("--address %s: %s is %s and carries its own addresses (0x%08X-0x%08X); --address places only raw images: drop it",
				*address, path, formatName(im.Format), start, end-1)
		}
		v := uint32(a)
		rawAt = &v
	}
	plan := &jobs.Plan{Recipe: "flash", Protocol: *protocol, Port: jobs.Mode{Baud: *baud}, Options: map[string]string{}}
	if *protocol == "stm32" {
		plan.Port.Parity = "even"
	}
	for _, kv := range strings.Split(*opts, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return fmt.Errorf("--options %q: write each option as key=value, separated by commas", kv)
		}
		if err := jobs.CheckOption(*protocol, k, v); err != nil {
			return fmt.Errorf("--options: %w", err)
		}
		plan.Options[k] = v
	}
	port, err := station.OpenPort(ctx, *portPath, plan.Port)
	if err != nil {
		return err
	}
	defer port.Close()

	bar := newBar(stdout)
	fmt.Fprintf(stdout, "unbrick flash: %s on %s at %d baud\n", *protocol, *portPath, *baud)
	reset := func(context.Context) error { return nil }
	if *protocol == "esprom" || *protocol == "stm32" {
		// No strap or reset line is wired (an ESP's DTR/RTS entry is the
		// entry option's): the unit waits in its bootloader already, with
		// no start-up to wait for (esptool's --before no_reset).
		reset = func(context.Context) error { return bootloader.ErrNoReset }
	}
	if ml, ok := port.(bootloader.ModemLines); ok && *protocol == "avr" {
		warned := false
		reset = func(ctx context.Context) error {
			err := station.PulseDTR(ctx, ml)
			if err == nil {
				return nil
			}
			if !warned {
				// A pseudo-terminal or a bare adapter: the unit must be
				// in its bootloader already (press its reset button).
				fmt.Fprintf(stderr, "unbrick flash: %v\n", err)
				warned = true
			}
			// Nothing was reset: no start-up to wait for.
			return fmt.Errorf("%w: %v", bootloader.ErrNoReset, err)
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

	// Where each byte goes. Nothing has been written or erased yet: an
	// image that does not fit is refused here.
	segs := im.Segments
	if im.Format == firmware.Raw {
		at := id.Flash.Start
		if rawAt != nil {
			at = *rawAt
		}
		segs = []firmware.Segment{{Addr: at, Data: segs[0].Data}}
	}
	if id.Flash.Size > 0 {
		for _, s := range segs {
			r := jobs.Region{Start: s.Addr, Size: uint32(len(s.Data))}
			if s.End() > 1<<32 || !r.Within(id.Flash) {
				return fmt.Errorf("%s (%s): its bytes at %s do not fit the %s's flash %s, where its bootloader may write; nothing was written or erased: build or place the image for this part",
					path, formatName(im.Format), r, id.ChipName, id.Flash)
			}
		}
	}
	chunks := widen(segs, writeGrain(*protocol, id))
	if len(segs) > 1 || chunks[0].Addr != segs[0].Addr || len(chunks[0].Data) != len(segs[0].Data) {
		fmt.Fprintf(stdout, "image: %s, %d bytes in %d segment(s): %s\n", formatName(im.Format), im.Size(), len(segs), regions(segs))
	}
	// The ESP ROM's FLASH_BEGIN erases the sectors it is about to write
	// (esptool's write_flash erases nothing apart): a separate erase would
	// erase them twice.
	if e, ok := t.(jobs.Eraser); ok && !*noErase && *protocol != "esprom" {
		// Every region first: a page shared by two segments is erased
		// once, before either is written.
		for _, c := range chunks {
			r := jobs.Region{Start: c.Addr, Size: uint32(len(c.Data))}
			fmt.Fprintf(stdout, "erase %s\n", r)
			if err := e.Erase(ctx, r); err != nil {
				return fmt.Errorf("erase %s: %w", r, err)
			}
		}
	}
	start := time.Now()
	written := 0
	for _, c := range chunks {
		if err := t.Write(ctx, c.Addr, c.Data, bar.progress(fmt.Sprintf("write  0x%08X", c.Addr))); err != nil {
			bar.done()
			return fmt.Errorf("write at 0x%08X: %w", c.Addr, err)
		}
		bar.done()
		written += len(c.Data)
	}
	if reason := cannotVerify(*protocol, id); reason != "" {
		fmt.Fprintf(stdout, "written, not verified (%s): %d bytes at %s in %v\n", reason, written, regions(chunks), time.Since(start).Round(10*time.Millisecond))
	} else {
		for _, c := range chunks {
			if err := t.Verify(ctx, c.Addr, c.Data, bar.progress(fmt.Sprintf("verify 0x%08X", c.Addr))); err != nil {
				bar.done()
				return fmt.Errorf("verify: %w; the unit does NOT hold the image", err)
			}
			bar.done()
		}
		fmt.Fprintf(stdout, "wrote and verified %d bytes at %s in %v\n", written, regions(chunks), time.Since(start).Round(10*time.Millisecond))
	}
	if s, ok := t.(jobs.Starter); ok && !*noStart {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("the image is written, but starting it failed: %w", err)
		}
		fmt.Fprintln(stdout, "started the application")
	}
	return nil
}

func formatName(f firmware.Format) string {
	switch f {
	case firmware.Hex:
		return "Intel HEX"
	case firmware.ELF:
		return "ELF"
	}
	return "a raw binary"
}

// cannotVerify returns why the unit's bootloader cannot check what was
// written, or "" when it can: the ESP8266 ROM has neither a flash read nor
// SPI_FLASH_MD5 (esptool verifies on it only through its stub, which
// `unbrick flash` does not load).
func cannotVerify(protocol string, id jobs.Identity) string {
	if protocol == "esprom" && strings.HasPrefix(id.ChipName, "ESP8266") {
		return "the ESP8266 ROM cannot read back"
	}
	return ""
}

// writeGrain is the unit a write must cover whole on the protocol: optiboot
// erases and programs whole pages (the part's page size), an STM32 WRITE
// takes words, and the ESP ROM's FLASH_BEGIN erases whole 4 KiB sectors.
func writeGrain(protocol string, id jobs.Identity) uint32 {
	switch protocol {
	case "avr":
		sig := [3]byte{byte(id.Chip >> 16), byte(id.Chip >> 8), byte(id.Chip)}
		if p, ok := avr.LookupSignature(sig); ok {
			return uint32(p.PageSize)
		}
		return 256
	case "stm32":
		return 4
	case "esprom":
		return esprom.SectorSize
	}
	return 1
}

// widen returns the segments widened to whole grains and merged where they
// then meet. The bytes the image does not give are 0xFF, what erased flash
// reads: they were going to be erased anyway (the page or sector is erased
// as a whole), and they never carry anything of the file.
func widen(segs []firmware.Segment, grain uint32) []firmware.Segment {
	if grain <= 1 {
		return segs
	}
	var out []firmware.Segment
	for _, s := range segs {
		lo := uint64(s.Addr) / uint64(grain) * uint64(grain)
		hi := (s.End() + uint64(grain) - 1) / uint64(grain) * uint64(grain)
		if n := len(out); n > 0 && lo <= out[n-1].End() {
			last := &out[n-1]
			if grow := int(hi - last.End()); grow > 0 {
				last.Data = append(last.Data, bytes.Repeat([]byte{0xFF}, grow)...)
			}
			copy(last.Data[uint64(s.Addr)-uint64(last.Addr):], s.Data)
			continue
		}
		b := bytes.Repeat([]byte{0xFF}, int(hi-lo))
		copy(b[uint64(s.Addr)-lo:], s.Data)
		out = append(out, firmware.Segment{Addr: uint32(lo), Data: b})
	}
	return out
}

func regions(segs []firmware.Segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "0x%08X-0x%08X", s.Addr, s.End()-1)
	}
	return b.String()
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
