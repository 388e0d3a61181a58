package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
	"github.com/unbrick/unbrick/sim/simbench"
)

// flashRun runs `unbrick flash` with args and returns its output.
func flashRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"flash"}, args...), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func mustFlash(t *testing.T, args ...string) string {
	t.Helper()
	out, err := flashRun(t, args...)
	if err != nil {
		t.Fatalf("unbrick flash %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func fill(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13) + byte(i>>8)
	}
	return b
}

// writeFile writes b to a new file named name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// expectFlash returns what flash from base should hold after a page-wise
// write of segs over a unit that held before from base: the image's bytes
// at the image's addresses; the rest of every page the image touches
// erased (0xFF); every other page as it was.
func expectFlash(base uint32, before []byte, segs []firmware.Segment, page uint32) []byte {
	want := append([]byte(nil), before...)
	for _, s := range segs {
		for a := s.Addr / page * page; uint64(a) < s.End(); a += page {
			for i := a; i < a+page; i++ {
				want[i-base] = 0xFF
			}
		}
	}
	for _, s := range segs {
		copy(want[s.Addr-base:], s.Data)
	}
	return want
}

func firstDiff(t *testing.T, what string, base uint32, got, want []byte) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: read %d bytes, want at least %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: byte at 0x%08X is 0x%02X, want 0x%02X (and maybe more)", what, base+uint32(i), got[i], want[i])
		}
	}
}

// gapImage is an Intel HEX image with gaps: bytes that start part-way into
// a page, a gap inside a page, a gap of whole pages, and a segment that
// crosses a page boundary.
func gapImage(base uint32) []firmware.Segment {
	return []firmware.Segment{
		{Addr: base, Data: fill(0x21, 0x110)},
		{Addr: base + 0x200, Data: fill(0x42, 0x40)},
		{Addr: base + 0xC20, Data: fill(0x63, 0x3E0+0x40)},
	}
}

// TestFlashHexThroughRealOptiboot: `unbrick flash` of an Intel HEX with gaps
// and a base away from the flash start (0x0100), named so that only its
// content says it is HEX, through real optiboot on simavr, leaves exactly
// the image's bytes at the image's addresses, as avrdude reads them back:
// pages the image does not touch keep what they held, the rest of the pages
// it touches are erased, and nothing of the file's text is anywhere.
func TestFlashHexThroughRealOptiboot(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
	o := peertest.StartOptiboot(t, peertest.OptibootQuick)
	dir := t.TempDir()

	// What the unit holds before: a raw pattern over 0x0000-0x13FF.
	before := fill(0x99, 0x1400)
	out := mustFlash(t, "--port", o.Path, "--protocol", "avr", "--no-start", "--address", "0", writeFile(t, dir, "before.bin", before))
	if !strings.Contains(out, "wrote and verified 5120 bytes") {
		t.Fatalf("raw write output:\n%s", out)
	}

	segs := gapImage(0x0100)
	hexText := firmware.FormatHex(segs, 0)
	img := writeFile(t, dir, "app.img", hexText)
	out = mustFlash(t, "--port", o.Path, "--protocol", "avr", "--no-start", img)
	if !strings.Contains(out, "Intel HEX") || !strings.Contains(out, "wrote and verified") {
		t.Errorf("unbrick flash output lacks the format or the verification:\n%s", out)
	}

	flash := avrdudeRead328(t, o.Path)
	want := expectFlash(0, before, segs, 128)
	firstDiff(t, "avrdude's read-back", 0, flash[:len(want)], want)
	if bytes.Contains(flash, hexText[:32]) {
		t.Error("the flash holds the HEX file's text")
	}
}

// avrdudeRead328 reads a whole ATmega328P through avrdude -c arduino.
func avrdudeRead328(t *testing.T, port string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "read.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "avrdude", "-c", "arduino", "-p", "m328p", "-P", port, "-b", "115200", "-U", "flash:r:"+out+":r").CombinedOutput()
	if err != nil {
		t.Fatalf("avrdude read: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return append(got, bytes.Repeat([]byte{0xFF}, 32*1024-len(got))...)
}

// simUnit is a model of kind on a pseudo-terminal, in its bootloader, with
// what it received recorded.
type simUnit struct {
	link  string
	model sim.Model
	mu    sync.Mutex
	rx    bytes.Buffer
}

func (u *simUnit) received() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]byte(nil), u.rx.Bytes()...)
}

func startSimUnit(t *testing.T, kind string) *simUnit {
	t.Helper()
	var k *simbench.Kind
	for _, c := range simbench.Kinds() {
		if c.Name == kind {
			k = c
		}
	}
	if k == nil {
		t.Fatalf("no sim kind %q", kind)
	}
	m, err := k.New(simbench.Spec{Kind: k.Name, Board: simbench.DemoBoard(k.Name), State: simbench.Bricked, Version: "1.0.0", Seed: 3,
		Options: map[string]string{"stay": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	u := &simUnit{link: filepath.Join(t.TempDir(), "tty"), model: m}
	pt, err := sim.OpenPTY(u.link)
	if err != nil {
		t.Fatal(err)
	}
	cfg := k.Line
	cfg.Fast = true
	line := sim.NewLine(cfg)
	line.Attach(pt)
	line.Tap(func(dir byte, b []byte) {
		if dir == '<' {
			u.mu.Lock()
			u.rx.Write(b)
			u.mu.Unlock()
		}
	})
	dev := sim.NewDevice(k.Name, m, line)
	t.Cleanup(dev.Close)
	if p, err := serial.Open(u.link, &serial.Mode{BaudRate: 115200}); err == nil {
		t.Cleanup(func() { p.Close() })
	}
	if k.HasStrap {
		dev.SetBoot(true)
	}
	dev.SetPower(true)
	if !k.HasStrap {
		dev.SetReset(true)
		dev.SetReset(false)
	}
	return u
}

// TestFlashHexOnSTM32: the same on the STM32F103 model, at 0x08004000,
// read back by stm32flash (1 KiB pages).
func TestFlashHexOnSTM32(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "stm32flash", Package: "stm32flash"})
	u := startSimUnit(t, "stm32f103")
	dir := t.TempDir()
	before := fill(0x37, 0x3000)
	mustFlash(t, "--port", u.link, "--protocol", "stm32", "--no-start", "--address", "0x08003000", writeFile(t, dir, "before.bin", before))
	segs := gapImage(0x08004000)
	out := mustFlash(t, "--port", u.link, "--protocol", "stm32", "--no-start", writeFile(t, dir, "app.img", firmware.FormatHex(segs, 0)))
	if !strings.Contains(out, "Intel HEX") || !strings.Contains(out, "wrote and verified") {
		t.Errorf("unbrick flash output lacks the format or the verification:\n%s", out)
	}
	read := filepath.Join(dir, "read.bin")
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		b, err := exec.CommandContext(ctx, "stm32flash", "-b", "115200", "-m", "8n1", "-S", "0x08003000:0x3000", "-r", read, u.link).CombinedOutput()
		cancel()
		if err == nil {
			break
		}
		// stm32flash gives the ROM 0.5 s for its first 0x7F (see stm32sim's
		// interop test): once more on a loaded machine.
		if try < 2 && strings.Contains(string(b), "Failed to init device") {
			continue
		}
		t.Fatalf("stm32flash -r: %v\n%s", err, b)
	}
	got, err := os.ReadFile(read)
	if err != nil {
		t.Fatal(err)
	}
	want := expectFlash(0x08003000, before, segs, 1024)
	firstDiff(t, "stm32flash's read-back", 0x08003000, got, want)
}

// TestFlashRefusesAnImageOutsideFlash: a HEX reaching past the flash is
// refused with a clear error once the unit has said what it is, and no
// erase or write reaches it.
func TestFlashRefusesAnImageOutsideFlash(t *testing.T) {
	tests := []struct {
		kind, protocol string
		seg            firmware.Segment
		want           string
		touching       [][]byte // commands that erase or write (STM32)
	}{
		// 0x7E00 is optiboot's: the application ends below it.
		{"atmega328p", "avr", firmware.Segment{Addr: 0x7D00, Data: fill(1, 0x180)},
			"0x00007D00-0x00007E7F do not fit the ATmega328P's flash 0x00000000-0x00007DFF", nil},
		{"stm32f103", "stm32", firmware.Segment{Addr: 0x0801FF00, Data: fill(2, 0x200)},
			"do not fit the",
			[][]byte{{0x31, 0xCE}, {0x43, 0xBC}, {0x44, 0xBB}}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			u := startSimUnit(t, tt.kind)
			img := writeFile(t, t.TempDir(), "big.hex", firmware.FormatHex([]firmware.Segment{tt.seg}, 0))
			out, err := flashRun(t, "--port", u.link, "--protocol", tt.protocol, img)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nothing was written or erased") {
				t.Fatalf("unbrick flash of an image past the flash = %v, want an error containing %q\n%s", err, tt.want, out)
			}
			rx := u.received()
			if tt.protocol == "avr" {
				cmds := stkCommands(rx)
				if bytes.ContainsAny(cmds, "\x55\x64") || !bytes.Contains(cmds, []byte{0x75}) {
					t.Errorf("the unit received the commands % X, want the sync and identification (READ_SIGN 75) and no LOAD_ADDRESS (55) or PROG_PAGE (64)", cmds)
				}
			}
			for _, c := range tt.touching {
				if i := bytes.Index(rx, c); i >= 0 {
					t.Errorf("the unit received % X (an erase or write) at %d of % X", c, i, rx)
				}
			}
			if len(rx) == 0 {
				t.Error("the unit received nothing: the test did not reach the unit at all")
			}
		})
	}
}

// stkCommands frames the STK500 stream a host sent and returns its
// command bytes in order (a lone 0x20 realigning after sync counts as one).
func stkCommands(rx []byte) []byte {
	args := map[byte]int{0x30: 0, 0x41: 1, 0x42: 20, 0x45: 5, 0x50: 0, 0x51: 0, 0x55: 2, 0x56: 4, 0x75: 0, 0x74: 3}
	var cmds []byte
	for j := 0; j < len(rx); {
		c := rx[j]
		cmds = append(cmds, c)
		switch {
		case c == 0x20:
			j++
		case c == 0x64 && j+2 < len(rx):
			j += 1 + 3 + int(rx[j+2]) + 1
		default:
			j += 1 + args[c] + 1
		}
	}
	return cmds
}

// TestFlashAddressOnlyForRaw: --address with an image that carries its own
// addresses is refused before the port is opened.
func TestFlashAddressOnlyForRaw(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, dir, "app.bin", firmware.FormatHex([]firmware.Segment{{Addr: 0x100, Data: fill(3, 64)}}, 0))
	_, err := flashRun(t, "--port", filepath.Join(dir, "no-such-port"), "--protocol", "avr", "--address", "0x200", img)
	if err == nil || !strings.Contains(err.Error(), "Intel HEX and carries its own addresses (0x00000100-0x0000013F)") {
		t.Fatalf("unbrick flash --address of a HEX = %v, want a refusal naming its addresses", err)
	}
	bad := writeFile(t, dir, "broken.hex", []byte(":10010000"+strings.Repeat("00", 16)+"00\n"))
	_, err = flashRun(t, "--port", filepath.Join(dir, "no-such-port"), "--protocol", "avr", bad)
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("unbrick flash of a broken .hex = %v, want the HEX parser's error with its line", err)
	}
}

// TestFlashHexThroughRealWiring: the same through the Arduino Mega 2560's
// own STK500v2 bootloader on simavr (--options bootloader=wiring), read
// back by avrdude -c wiring. The image starts at 0x0300: the bootloader
// erases pages in order from 0, so the client rewrites pages 0-2 with what
// they held.
func TestFlashHexThroughRealWiring(t *testing.T) {
	avrdude := peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})[0]
	o := peertest.StartOptiboot(t, peertest.WiringMega2560)
	dir := t.TempDir()
	before := fill(0x55, 0x1400)
	mustFlash(t, "--port", o.Path, "--protocol", "avr", "--options", "bootloader=wiring", "--address", "0", writeFile(t, dir, "before.bin", before))
	segs := gapImage(0x0300)
	out := mustFlash(t, "--port", o.Path, "--protocol", "avr", "--options", "bootloader=wiring", writeFile(t, dir, "app.img", firmware.FormatHex(segs, 0)))
	if !strings.Contains(out, "ATmega2560") || !strings.Contains(out, "wrote and verified") {
		t.Errorf("unbrick flash output:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, avrdude, "-c", "wiring", "-p", "m2560", "-P", o.Path, "-b", "115200", "-t")
	cmd.Stdin = strings.NewReader("dump flash 0 0x1400\nquit\n")
	dump, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("avrdude -t: %v\n%s", err, dump)
	}
	var got []byte
	for _, l := range strings.Split(string(dump), "\n") {
		f := strings.Fields(l)
		var a int
		if len(f) < 17 || len(f[0]) < 4 {
			continue
		}
		if _, err := fmt.Sscanf(f[0], "%x", &a); err != nil || a != len(got) {
			continue
		}
		for _, h := range f[1:17] {
			var b byte
			fmt.Sscanf(h, "%02x", &b)
			got = append(got, b)
		}
	}
	want := expectFlash(0, before, segs, 256)
	firstDiff(t, "avrdude -c wiring's read-back", 0, got, want)
}

// TestFlashESPErasesOnce: on the ESP ROM, FLASH_DEFL_BEGIN erases the
// sectors it is about to write, so `unbrick flash` erases nothing apart:
// each sector of the image is erased once, and the image verifies.
func TestFlashESPErasesOnce(t *testing.T) {
	u := startSimUnit(t, "esp32")
	m := u.model.(*espsim.Model)
	img := fill(0x5A, 64<<10)
	before := m.Stats().SectorsErased
	mustFlash(t, "--port", u.link, "--protocol", "esprom", "--no-start", "--address", "0x10000", writeFile(t, t.TempDir(), "app.bin", img))
	if got, want := m.Stats().SectorsErased-before, len(img)/esprom.SectorSize; got != want {
		t.Errorf("unbrick flash of %d bytes erased %d sectors, want %d (each once, by FLASH_DEFL_BEGIN)", len(img), got, want)
	}
	got, err := m.Flash().Read(0x10000, len(img))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Errorf("the unit's flash at 0x10000 does not hold the image")
	}
}
