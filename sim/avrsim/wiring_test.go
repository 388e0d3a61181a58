package avrsim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/sim"
)

// v2 frames an STK500v2 message with sequence number seq.
func v2(seq byte, body ...byte) []byte {
	b := []byte{avr.V2MessageStart, seq, byte(len(body) >> 8), byte(len(body)), avr.V2Token}
	b = append(b, body...)
	var x byte
	for _, c := range b {
		x ^= c
	}
	return append(b, x)
}

// wiringSteps are the STK500v2 messages avrdude -c wiring and WiringClient
// send, and the traps of stk500boot.c: a page written twice in one session
// (the second time over unerased flash), a bad checksum, chip erase.
func wiringSteps() []step {
	page := func(seed byte) []byte { return pattern(seed, 256) }
	prog := func(seq byte, data []byte) []byte {
		return v2(seq, append([]byte{avr.V2ProgramFlashISP, 1, 0, 0xC1, 10, 0x40, 0x4C, 0x20, 0, 0}, data...)...)
	}
	load := func(seq byte, word uint32) []byte {
		w := word | 1<<31
		return v2(seq, avr.V2LoadAddress, byte(w>>24), byte(w>>16), byte(w>>8), byte(w))
	}
	return []step{
		{"SIGN_ON", v2(1, avr.V2SignOn)},
		{"GET_PARAMETER HW_VER 90", v2(2, avr.V2GetParameter, 0x90)},
		{"GET_PARAMETER SW_MAJOR 91", v2(3, avr.V2GetParameter, 0x91)},
		{"GET_PARAMETER SW_MINOR 92", v2(4, avr.V2GetParameter, 0x92)},
		{"GET_PARAMETER build 80", v2(5, avr.V2GetParameter, 0x80)},
		{"GET_PARAMETER unknown 98", v2(6, avr.V2GetParameter, 0x98)},
		{"SET_PARAMETER", v2(7, avr.V2SetParameter, 0x9E, 0x01)},
		{"READ_SIGNATURE_ISP 0", v2(8, avr.V2ReadSignatureISP, 4, 0x30, 0, 0, 0)},
		{"READ_SIGNATURE_ISP 1", v2(9, avr.V2ReadSignatureISP, 4, 0x30, 0, 1, 0)},
		{"READ_SIGNATURE_ISP 2", v2(10, avr.V2ReadSignatureISP, 4, 0x30, 0, 2, 0)},
		{"SPI_MULTI read signature 1", v2(11, avr.V2SPIMulti, 4, 4, 0, 0x30, 0, 1, 0)},
		{"ENTER_PROGMODE_ISP", v2(12, avr.V2EnterProgmodeISP, 200, 100, 25, 32, 0, 0x53, 3, 0xAC, 0x53, 0, 0)},
		{"CHIP_ERASE_ISP (answers FAILED)", v2(13, avr.V2ChipEraseISP, 55, 0, 0xAC, 0x80, 0, 0)},
		{"LOAD_ADDRESS 0", load(14, 0)},
		{"PROGRAM_FLASH_ISP page 0", prog(15, page(0x31))},
		{"LOAD_ADDRESS 0", load(16, 0)},
		{"READ_FLASH_ISP page 0", v2(17, avr.V2ReadFlashISP, 1, 0, 0x20)},
		{"LOAD_ADDRESS word 0x100 (page 2)", load(18, 0x100)},
		{"PROGRAM_FLASH_ISP page 2 (erases page 1)", prog(19, page(0x52))},
		{"LOAD_ADDRESS 0", load(20, 0)},
		{"PROGRAM_FLASH_ISP page 0 again (erases page 2)", prog(21, page(0x74))},
		{"LOAD_ADDRESS 0", load(22, 0)},
		{"READ_FLASH_ISP page 0 (written twice)", v2(23, avr.V2ReadFlashISP, 1, 0, 0x20)},
		{"LOAD_ADDRESS word 0x80", load(24, 0x80)},
		{"READ_FLASH_ISP page 1", v2(25, avr.V2ReadFlashISP, 1, 0, 0x20)},
		{"LOAD_ADDRESS word 0x100", load(26, 0x100)},
		{"READ_FLASH_ISP page 2", v2(27, avr.V2ReadFlashISP, 1, 0, 0x20)},
		{"a message with a bad checksum", func() []byte { b := v2(28, avr.V2SignOn); b[len(b)-1] ^= 1; return b }()},
		{"unknown command 0x55", v2(29, 0x55)},
		{"SIGN_ON with sequence 200", v2(200, avr.V2SignOn)},
		{"LEAVE_PROGMODE_ISP", v2(201, avr.V2LeaveProgmodeISP, 1, 1)},
	}
}

// readFrame reads one STK500v2 answer: the five header bytes, then the
// body and checksum the header announces. A message with a bad checksum
// gets no answer: then it reads until the line is quiet.
func readFrame(ctx context.Context, c *bootloader.Conn, cmd []byte) []byte {
	var x byte
	for _, b := range cmd {
		x ^= b
	}
	if x != 0 {
		return quietRead(ctx, c, 300*time.Millisecond)
	}
	h := readN(ctx, c, 5, replyWait)
	if len(h) < 5 {
		return h
	}
	return append(h, readN(ctx, c, int(h[2])<<8|int(h[3])+1, replyWait)...)
}

// andStep is the read of page 0 after it was programmed twice.
const andStep = 22

// TestDifferentialWiring sends the same STK500v2 messages to the Mega
// 2560's real bootloader on simavr and to the model, and compares the
// answers byte for byte.
func TestDifferentialWiring(t *testing.T) {
	steps := wiringSteps()
	_, conn := openReal(t, peertest.WiringMega2560)
	ctx := context.Background()
	real := make([][]byte, len(steps))
	for i, s := range steps {
		if err := conn.Write(s.cmd); err != nil {
			t.Fatal(err)
		}
		real[i] = readFrame(ctx, conn, s.cmd)
	}
	model := make([][]byte, len(steps))
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega2560", Options{Wiring: true})
		u.dev.SetPower(true)
		time.Sleep(StartupDelay + time.Millisecond)
		c := bootloader.NewConn(u.host)
		for i, s := range steps {
			u.host.Write(s.cmd)
			model[i] = readFrame(ctx, c, s.cmd)
		}
	})
	for i, s := range steps {
		if i == andStep {
			continue
		}
		if !bytes.Equal(real[i], model[i]) {
			t.Errorf("step %d %s: the real bootloader answers % X, the model % X", i+1, s.name, real[i], model[i])
		}
	}
	// Page 0 written a second time without an erase: silicon programs
	// only 1s to 0s (ATmega2560 datasheet, "Performing a Page Write": the
	// page must be erased first), so it holds the AND of both writes.
	// simavr's SPM copies the page buffer and shows the second write: there
	// the model follows the datasheet, not simavr.
	and := pattern(0x31, 256)
	for i, b := range pattern(0x74, 256) {
		and[i] &= b
	}
	if got := model[andStep]; len(got) < 7+256 || !bytes.Equal(got[7:7+256], and) {
		t.Errorf("step %d %s: the model answers % .16X..., want page 0 = the AND of both writes", andStep+1, steps[andStep].name, got)
	}
	if got := real[andStep]; len(got) < 7+256 || !bytes.Equal(got[7:7+256], pattern(0x74, 256)) {
		t.Errorf("step %d %s: simavr answers % .16X..., want the second write alone (simavr does not AND)", andStep+1, steps[andStep].name, got)
	}
	t.Logf("%d messages compared (one against the datasheet where simavr is lenient)", len(steps))
}

// TestWiringAvrdude: avrdude -c wiring writes, verifies and reads back an
// Intel HEX through the model.
func TestWiringAvrdude(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
	dir := t.TempDir()
	m, err := New("atmega2560", Options{Wiring: true, Window: -1})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := sim.OpenPTY(filepath.Join(dir, "ttyACM0"))
	if err != nil {
		t.Fatal(err)
	}
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(pt)
	d := sim.NewDevice("atmega2560", m, line)
	defer d.Close()
	d.SetPower(true)
	img := pattern(0x3C, 3000)
	f, err := os.Create(filepath.Join(dir, "app.hex"))
	if err != nil {
		t.Fatal(err)
	}
	writeHex(f, 0, img)
	f.Close()
	out := avrdude(t, "-c", "wiring", "-p", "m2560", "-P", pt.Path(), "-b", "115200", "-D", "-U", "flash:w:"+filepath.Join(dir, "app.hex")+":i")
	if !strings.Contains(out, "3000 bytes of flash verified") {
		t.Fatalf("avrdude output lacks the verification:\n%s", out)
	}
	if got := m.Flash().Snapshot(); !bytes.Equal(got[:len(img)], img) {
		t.Fatal("after avrdude's write the model's flash does not hold the image")
	}
}
