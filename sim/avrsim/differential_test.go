package avrsim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/serialport"
)

// step is one STK500 command of the differential test and what it is.
type step struct {
	name string
	cmd  []byte
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*7)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// diffSteps are every command this package's client and avrdude -c arduino
// send to optiboot (and a few they might), in one session.
func diffSteps(setDevice, setDeviceExt []byte) []step {
	const eop = avr.SyncCRCEOP
	return []step{
		{"GET_SYNC", []byte{0x30, eop}},
		{"GET_SYNC again", []byte{0x30, eop}},
		{"GET_PARAMETER hardware version 0x80", []byte{0x41, 0x80, eop}},
		{"GET_PARAMETER major 0x81", []byte{0x41, 0x81, eop}},
		{"GET_PARAMETER minor 0x82", []byte{0x41, 0x82, eop}},
		{"GET_PARAMETER top card 0x98", []byte{0x41, 0x98, eop}},
		{"SET_DEVICE (the client's and avrdude's)", setDevice},
		{"SET_DEVICE_EXT (the client's and avrdude's)", setDeviceExt},
		{"ENTER_PROGMODE", []byte{0x50, eop}},
		{"READ_SIGN", []byte{0x75, eop}},
		{"UNIVERSAL read signature byte", []byte{0x56, 0x30, 0x00, 0x00, 0x00, eop}},
		{"UNIVERSAL chip erase (avrdude)", []byte{0x56, 0xAC, 0x80, 0x00, 0x00, eop}},
		{"LOAD_ADDRESS word 0x0100", []byte{0x55, 0x00, 0x01, eop}},
		{"PROG_PAGE 128 bytes of flash at 0x0200", cat([]byte{0x64, 0x00, 0x80, 'F'}, pattern(0x11, 128), []byte{eop})},
		{"LOAD_ADDRESS word 0x0100", []byte{0x55, 0x00, 0x01, eop}},
		{"READ_PAGE 128 bytes of flash at 0x0200", []byte{0x74, 0x00, 0x80, 'F', eop}},
		{"LOAD_ADDRESS word 0x0040", []byte{0x55, 0x40, 0x00, eop}},
		{"PROG_PAGE 128 bytes of flash at 0x0080", cat([]byte{0x64, 0x00, 0x80, 'F'}, pattern(0x5A, 128), []byte{eop})},
		{"LOAD_ADDRESS word 0x0000", []byte{0x55, 0x00, 0x00, eop}},
		{"READ_PAGE length 0 (256 bytes) at 0x0000", []byte{0x74, 0x00, 0x00, 'F', eop}},
		{"LOAD_ADDRESS word 0x0041 (mid-page)", []byte{0x55, 0x41, 0x00, eop}},
		{"READ_PAGE 16 bytes from mid-page", []byte{0x74, 0x00, 0x10, 'F', eop}},
		{"LOAD_ADDRESS word 0x3F00 (optiboot)", []byte{0x55, 0x00, 0x3F, eop}},
		{"READ_PAGE optiboot's first page", []byte{0x74, 0x00, 0x80, 'F', eop}},
		{"LOAD_ADDRESS word 0x3FFF (version word)", []byte{0x55, 0xFF, 0x3F, eop}},
		{"READ_PAGE the version word", []byte{0x74, 0x00, 0x02, 'F', eop}},
		{"LOAD_ADDRESS word 0x0200", []byte{0x55, 0x00, 0x02, eop}},
		{"READ_PAGE 'E' (the client's ReadEEPROM)", []byte{0x74, 0x00, 0x08, 'E', eop}},
		{"LOAD_ADDRESS word 0x0200", []byte{0x55, 0x00, 0x02, eop}},
		{"PROG_PAGE 'E' 4 bytes (the client's WriteEEPROM)", []byte{0x64, 0x00, 0x04, 'E', 1, 2, 3, 4, eop}},
		{"LOAD_ADDRESS word 0x0200", []byte{0x55, 0x00, 0x02, eop}},
		{"READ_PAGE where 'E' went", []byte{0x74, 0x00, 0x80, 'F', eop}},
		{"unknown command 0x99", []byte{0x99, eop}},
		{"GET_SYNC after all that", []byte{0x30, eop}},
		{"LEAVE_PROGMODE", []byte{0x51, eop}},
	}
}

// realBoot returns the optiboot build's bytes from 0x7E00 to the end of
// flash, for the model's boot section.
func realBoot(t *testing.T, build string) []byte {
	t.Helper()
	path := peertest.NeedFile(t, filepath.Join(peertest.Dir(), "optiboot", build), "scripts/peers/optiboot.sh")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := firmware.ParseHex(data)
	if err != nil {
		t.Fatal(err)
	}
	start, b, err := im.Flatten(0xFF)
	if err != nil || start < 0x7E00 {
		t.Fatalf("%s: starts at 0x%X (%v), want 0x7E00 or above", build, start, err)
	}
	return append(bytes.Repeat([]byte{0xFF}, int(start-0x7E00)), b...)
}

// appLine is how the model's application starts the line it prints on a
// blank chip ("ATmega328P: no application image ..."): the virtual bench's
// diagnostic (see runApp), where a real blank ATmega prints nothing. The
// differential tests compare what the bootloader says, so they cut the
// model's replies there.
const appLine = "ATmega"

func cutApp(b []byte) []byte {
	if i := bytes.Index(b, []byte(appLine)); i >= 0 {
		return b[:i]
	}
	return b
}

// replyWait bounds the wait for an answer that must come: long, for a
// loaded machine where simavr falls behind real time.
const replyWait = 20 * time.Second

// readN reads until n bytes arrived or wait passed, and returns them.
func readN(ctx context.Context, c *bootloader.Conn, n int, wait time.Duration) []byte {
	got := make([]byte, 0, n)
	buf := make([]byte, n)
	deadline := time.Now().Add(wait)
	for len(got) < n {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		k, err := c.ReadSome(ctx, buf[:n-len(got)], left, "reply")
		got = append(got, buf[:k]...)
		if err != nil && k == 0 {
			break
		}
	}
	return got
}

// v1Reply returns the length of optiboot's answer to an STK500v1 command:
// STK_INSYNC, the data, STK_OK.
func v1Reply(cmd []byte) int {
	switch cmd[0] {
	case avr.CmdGetParameter, avr.CmdUniversal:
		return 3
	case avr.CmdReadSign:
		return 5
	case avr.CmdReadPage:
		n := int(cmd[2])
		if n == 0 {
			n = 256
		}
		return n + 2
	}
	return 2
}

// quietRead reads what arrives until the line has been quiet for quiet:
// only where nothing is expected, to see that nothing comes.
func quietRead(ctx context.Context, c *bootloader.Conn, quiet time.Duration) []byte {
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := c.ReadSome(ctx, buf, quiet, "reply")
		got = append(got, buf[:n]...)
		if err != nil || n == 0 {
			return got
		}
	}
}

// TestDifferentialOptiboot sends every STK500 command the client and
// avrdude send to real optiboot (optiboot.c built with LED_START_FLASHES=0,
// on simavr) and to the model set up as the same version, and compares the
// replies byte for byte, then what each flash holds.
func TestDifferentialOptiboot(t *testing.T) {
	sd, sde := clientInitCommands(t, "atmega328p")
	steps := diffSteps(sd, sde)
	boot := realBoot(t, peertest.OptibootQuick)

	// The real one.
	o, conn := openReal(t, peertest.OptibootQuick)
	ctx := context.Background()
	real := make([][]byte, len(steps))
	for i, s := range steps {
		if err := conn.Write(s.cmd); err != nil {
			t.Fatal(err)
		}
		real[i] = readN(ctx, conn, v1Reply(s.cmd), replyWait)
	}
	realRest := quietRead(ctx, conn, 300*time.Millisecond)

	// The model, as optiboot 4.4 with the real code in its boot section.
	model := make([][]byte, len(steps))
	var snap, modelRest []byte
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Major: 4, Minor: 4})
		if err := u.m.Flash().Load(0x7E00, boot); err != nil {
			t.Fatal(err)
		}
		u.dev.SetPower(true)
		u.pulse(ctx)
		time.Sleep(StartupDelay + time.Millisecond)
		c := bootloader.NewConn(u.host)
		for i, s := range steps {
			u.host.Write(s.cmd)
			model[i] = readN(ctx, c, v1Reply(s.cmd), replyWait)
		}
		modelRest = cutApp(quietRead(ctx, c, 300*time.Millisecond))
		snap = u.m.Flash().Snapshot()
	})

	for i, s := range steps {
		if !bytes.Equal(real[i], model[i]) {
			t.Errorf("step %d %s (% X): real optiboot answers % X, the model % X", i+1, s.name, head(s.cmd), real[i], model[i])
		}
	}
	if !bytes.Equal(realRest, modelRest) {
		t.Errorf("after the last answer real optiboot sent % X, the model % X", realRest, modelRest)
	}
	t.Logf("%d commands compared", len(steps))

	// What the flash holds: the pages the steps wrote, read through avrdude
	// from the real one.
	flash := avrdudeReadM328p(t, o.Path)
	for _, a := range []int{0x0000, 0x0080, 0x0200, 0x0400} {
		if !bytes.Equal(flash[a:a+128], snap[a:a+128]) {
			t.Errorf("page 0x%04X: real optiboot holds % X..., the model % X...", a, flash[a:a+16], snap[a:a+16])
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// avrdudeReadM328p reads a whole ATmega328P through avrdude -c arduino,
// padded to 32 KiB with 0xFF (avrdude drops trailing 0xFF).
func avrdudeReadM328p(t *testing.T, path string) []byte {
	t.Helper()
	peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
	out := filepath.Join(t.TempDir(), "read.bin")
	avrdude(t, "-c", "arduino", "-p", "m328p", "-P", path, "-b", "115200", "-U", "flash:r:"+out+":r")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return append(got, bytes.Repeat([]byte{0xFF}, 32*1024-len(got))...)
}

// TestDifferentialBadTerminator: a command whose terminator is not 0x20
// gets no answer from either, and both start the application.
func TestDifferentialBadTerminator(t *testing.T) {
	o, conn := openReal(t, peertest.OptibootQuick)
	ctx := context.Background()
	before := o.AppStarts()
	conn.Write([]byte{0x30, 0x20})
	sync := readN(ctx, conn, 2, replyWait)
	conn.Write([]byte{0x30, 0x21})
	realBad := quietRead(ctx, conn, 300*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for o.AppStarts() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	realApp := o.AppStarts() > before

	var modelBad []byte
	var st Stats
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "atmega328p", Options{Major: 4, Minor: 4})
		u.dev.SetPower(true)
		u.pulse(ctx)
		time.Sleep(StartupDelay + time.Millisecond)
		c := bootloader.NewConn(u.host)
		u.host.Write([]byte{0x30, 0x20})
		readN(ctx, c, 2, replyWait)
		u.host.Write([]byte{0x30, 0x21})
		modelBad = cutApp(quietRead(ctx, c, 300*time.Millisecond))
		st = u.m.Stats()
	})
	if !bytes.Equal(sync, []byte{0x14, 0x10}) {
		t.Fatalf("real optiboot answered GET_SYNC % X, want 14 10", sync)
	}
	if !bytes.Equal(realBad, modelBad) || len(realBad) != 0 {
		t.Errorf("GET_SYNC with terminator 0x21: real answers % X, the model % X; want nothing from both", realBad, modelBad)
	}
	if !realApp || st.AppRuns == 0 || st.Watchdog != 1 || st.BadTerminators != 1 {
		t.Errorf("after a bad terminator: real started the application: %v; model Stats() = %+v, want one application run", realApp, st)
	}
}

// openReal starts the real bootloader build on simavr, opens its port at
// 115200 and resets the part, so that the bootloader listens.
func openReal(t *testing.T, build string) (*peertest.Optiboot, *bootloader.Conn) {
	t.Helper()
	o := peertest.StartOptiboot(t, build)
	port, err := serialport.Open(o.Path, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	conn := bootloader.NewConn(port)
	if err := o.Reset(); err != nil {
		t.Fatal(err)
	}
	return o, conn
}
