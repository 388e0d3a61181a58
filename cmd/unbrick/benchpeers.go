package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/sim/ubootsim"
	"github.com/unbrick/unbrick/station"
)

// linkMinimum is the least time the bytes a write and verify of img must
// put on the link take at 10 bit times each (11 for the STM32's 8E1),
// with nothing else (no turnarounds, no erase or programming time): a
// lower bound.
//
//	stm32 (AN3155) per 256-byte block: WRITE 31 CE, address 5, N-1 data XOR, three ACKs;
//	               READ 11 EE, address 5, N-1 ~N-1, three ACKs and the data
//	avr (STK500) per 128-byte page: LOAD_ADDRESS 4 -> 2; PROG_PAGE 4+128+1 -> 2;
//	               per 256 bytes read back (optiboot streams up to 256 bytes a
//	               READ_PAGE): LOAD_ADDRESS 4 -> 2; READ_PAGE 5 -> 256+2
//	esprom: the zlib stream at 921600, once; the MD5 answer is negligible
//	uboot (YMODEM): block 0, 1029 bytes per KiB, EOT, the closing block 0
func linkMinimum(protocol string, img []byte) time.Duration {
	n := len(img)
	bits := func(bytes, baud int) time.Duration {
		per := 10
		if protocol == "stm32" {
			per = 11 // 8E1, as AN3155 requires and the model paces
		}
		return time.Duration(bytes) * time.Duration(per) * time.Second / time.Duration(baud)
	}
	switch protocol {
	case "stm32":
		var b int
		for off := 0; off < n; off += 256 {
			k := min(256, n-off)
			b += 2 + 5 + 1 + k + 1 + 3 // write
			b += 2 + 5 + 2 + 3 + k     // read
		}
		return bits(b, 115200)
	case "avr":
		var b int
		for off := 0; off < n; off += 128 {
			b += 6 + 4 + 128 + 1 + 2
		}
		for off := 0; off < n; off += 256 {
			b += 6 + 5 + min(256, n-off) + 2
		}
		return bits(b, 115200)
	case "esprom":
		return bits(len(esprom.Compress(img)), 921600)
	case "uboot":
		blocks := (n + 1023) / 1024
		return bits(133+blocks*1029+1+133+blocks+4, 115200)
	}
	return 0
}

// ubootLoad stops U-Boot on link and loads img into RAM with unbrick's
// YMODEM sender; it returns the time from loady to the last block's ACK.
func ubootLoad(ctx context.Context, link string, img []byte) (time.Duration, error) {
	p, err := station.OpenPort(ctx, link, jobs.Mode{Baud: 115200})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	c := uboot.New(p, uboot.Options{})
	if err := c.Stop(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	var took time.Duration
	err = c.Load(ctx, ubootsim.KernelAddr, img, func(done, total int64) {
		if done == total {
			took = time.Since(start)
		}
	})
	return took, err
}

// sbLoad types loady at U-Boot's prompt on link, sends file with lrzsz's
// sb on the terminal, and returns sb's time from its start to its exit,
// once U-Boot has reported the total.
func sbLoad(ctx context.Context, link, file string, size int) (time.Duration, error) {
	if _, err := exec.LookPath("sb"); err != nil {
		return 0, fmt.Errorf("sb (Debian package lrzsz): %w", errSkip)
	}
	p, err := station.OpenPort(ctx, link, jobs.Mode{Baud: 115200})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	// Get the prompt as a person does: a key, then loady.
	c := uboot.New(p, uboot.Options{})
	if err := c.Stop(ctx); err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintf(p, "loady %x\r", ubootsim.KernelAddr); err != nil {
		return 0, err
	}
	if err := readUntil(p, "bps...\r\n", 10*time.Second); err != nil {
		return 0, err
	}
	tty, err := os.OpenFile(link, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer tty.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sb", "--ymodem", "-k", file)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("sb: %v: %s", err, stderr.String())
	}
	took := time.Since(start)
	if err := readUntil(p, fmt.Sprintf("= %d Bytes\r\n", size), 10*time.Second); err != nil {
		return 0, fmt.Errorf("after sb: %w", err)
	}
	return took, nil
}

func readUntil(p jobs.Port, want string, within time.Duration) error {
	var got []byte
	buf := make([]byte, 512)
	p.SetReadTimeout(50 * time.Millisecond)
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		n, err := p.Read(buf)
		if err != nil {
			return err
		}
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("after %v the unit sent %q, want %q", within, got, want)
}

// The rates of the ESP comparison. esptool's documented default is
// 115200 ("The default esptool baud rate is 115200bps", esptool
// docs/en/esptool/basic-options.rst, "Baud Rate"); esptool-js's ESPLoader
// has no default of its own (LoaderOptions.baudrate is required; its
// romBaudrate defaults to 115200, lib/esploader.js) and its README's
// examples pass baudrate: 115200. (Its demo page, examples/typescript,
// preselects 921600 in its rate list: hence vs_peer_same_baud beside.)
// The issue's own first measurement ran esptool-js at 115200. unbrick
// switches the ROM to espFastBaud, jobs.DefaultESPFlashBaud.
const (
	esptoolJSDefaultBaud = 115200
	espFastBaud          = jobs.DefaultESPFlashBaud
)

// esptoolJSArgs is the command line that runs Espressif's esptool-js (its
// stub, at baud after the stub starts, compressed, MD5-checked) through
// the project's Web-Serial shim, as internal/peertest does.
func esptoolJSArgs(link string, addr uint32, file string, baud int) ([]string, error) {
	_, src, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(src), "..", "..")
	shim := filepath.Join(root, "internal", "peertest", "esptooljs", "shim.mjs")
	dir := filepath.Join(root, ".peers", "esptool-js")
	if d := os.Getenv("UNBRICK_PEERS"); d != "" {
		dir = filepath.Join(d, "esptool-js")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "esptool-js", "lib", "index.js")); err != nil {
		return nil, fmt.Errorf("esptool-js (scripts/peers/esptool-js.sh installs it): %w", errSkip)
	}
	if _, err := os.Stat(shim); err != nil {
		return nil, fmt.Errorf("the esptool-js shim %s: %w", shim, errSkip)
	}
	return []string{"node", shim, "--esptool", dir, "--port", link, "--baud", fmt.Sprint(baud), "--write", fmt.Sprintf("0x%x=%s", addr, file)}, nil
}

// esptoolJSSameBaud resets the ESP peer unit into its ROM again (EN
// pulsed through the bench's lines while GPIO0 stays low: the stub that
// esptool-js left running is gone, the ROM listens at 115200) and times
// esptool-js once more, at unbrick's rate. It returns the time, the
// command line and what went wrong.
func esptoolJSSameBaud(ctx context.Context, m *station.BenchManifest, pu, fu station.BenchUnit) (float64, string, string) {
	args, err := esptoolJSArgs(pu.Link, fu.Addr, fu.Image, espFastBaud)
	if err != nil {
		return 0, "", err.Error()
	}
	line := strings.Join(args, " ")
	if tool := peerTool(args); tool == "" {
		return 0, line, fmt.Sprintf("%s: %v", args[0], errSkip)
	}
	if err := resetUnit(ctx, m.Socket, pu.Reset, simbench.ESP32.ResetActive); err != nil {
		return 0, line, fmt.Sprintf("reset the peer unit into its ROM: %v", err)
	}
	d, err := timed(ctx, args[0], args[1:]...)
	if err != nil {
		return 0, line, err.Error()
	}
	return d.Seconds(), line, ""
}

// resetUnit pulses a bench unit's reset line (active at active) through
// the lines `unbrick sim --bench` serves on socket, and gives its ROM time
// to start and print its boot line.
func resetUnit(ctx context.Context, socket, name string, active pgpio.Level) error {
	r := &gpio.Remote{Socket: socket}
	defer r.Close()
	p, err := r.Open(name)
	if err != nil {
		return err
	}
	if err := p.Out(active); err != nil {
		return err
	}
	if err := bootloader.Sleep(ctx, 20*time.Millisecond); err != nil {
		return err
	}
	if err := p.Out(!active); err != nil {
		return err
	}
	return bootloader.Sleep(ctx, 200*time.Millisecond)
}

// halfComparison says what the side-by-side on the image half 0xFF
// times, and what each side does with the blank half.
func halfComparison(protocol string) string {
	switch protocol {
	case "stm32":
		return "connect, erase the pages the image covers, write, verify by reading every byte back, at 115200 8E1; " +
			"the image's middle half is 0xFF: stm32flash writes it, unbrick sends no WRITE for a 256-byte block all 0xFF in a page it erased; " +
			"both read the whole image back (the F103's ROM has no GET_CHECKSUM)"
	case "avr":
		return "connect, write and verify by reading back at 115200 (optiboot erases each page it writes, there is no erase command); " +
			"the image's middle half is 0xFF: avrdude writes and reads back every page; unbrick reads the blank run from its top down, 256 bytes a read, " +
			"leaves the pages found blank alone (that read is their read-back) and writes and reads back the rest (below the first page found holding the old image, unread first); " +
			"both units start bricked (the old image's first half, then 0xFF)"
	}
	return ""
}

// stm32flashArgs runs stm32flash at 8E1, as AN3155 wants, through the
// ptyparity shim (scripts/peers/ptyparity.sh builds it): a pty drops
// PARENB, and the model, like a unit, fails a host at 8N1.
func stm32flashArgs(link, file string) ([]string, error) {
	_, src, _, _ := runtime.Caller(0)
	so := filepath.Join(filepath.Dir(src), "..", "..", ".peers", "ptyparity.so")
	if d := os.Getenv("UNBRICK_PEERS"); d != "" {
		so = filepath.Join(d, "ptyparity.so")
	}
	if _, err := os.Stat(so); err != nil {
		return nil, fmt.Errorf("the ptyparity shim for stm32flash at 8E1 (scripts/peers/ptyparity.sh builds it): %w", errSkip)
	}
	return []string{"env", "LD_PRELOAD=" + so, "stm32flash", "-b", "115200", "-m", "8e1", "-w", file, "-v", link}, nil
}

// peerTool returns the path of the program a peer command line runs (past
// env and its VAR=value settings), or "" when it is not installed.
func peerTool(args []string) string {
	i := 0
	if len(args) > 0 && args[0] == "env" {
		i = 1
		for i < len(args) && strings.Contains(args[i], "=") {
			i++
		}
	}
	if i >= len(args) {
		return ""
	}
	p, err := exec.LookPath(args[i])
	if err != nil {
		return ""
	}
	return p
}
