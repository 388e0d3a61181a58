package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Optiboot builds that scripts/peers/optiboot.sh puts in Dir()/optiboot,
// each real optiboot for the ATmega328P, run on simavr by StartOptiboot.
const (
	// OptibootQuick is optiboot.c built with LED_START_FLASHES=0: it
	// listens as soon as the part leaves reset.
	OptibootQuick = "optiboot_flashes0.hex"
	// OptibootFlashes is optiboot.c built with the stock
	// LED_START_FLASHES=3: it flashes the LED for about 375 ms after each
	// reset before it reads the UART.
	OptibootFlashes = "optiboot_flashes3.hex"
	// OptibootStock is the optiboot_atmega328.hex that Debian's
	// arduino-core-avr ships (optiboot 4.4, LED_START_FLASHES=3), the
	// bootloader of a stock Uno. Debian rebuilds it with its avr-gcc 5.4:
	// arduino-core-avr 1.8.7+dfsg-1~deb12u1's is byte for byte the
	// LED_START_FLASHES=3 build at 0x7E00, 532 bytes of code that run 20
	// bytes past the flash, and the harness refuses it (see
	// OptibootOverflow). OptibootFlashes is the same code linked where it
	// fits.
	OptibootStock = "optiboot_atmega328_stock.hex"
)

// WiringMega2560 is the Arduino Mega 2560's stock bootloader as Debian's
// arduino-core-avr ships it (stk500boot.c, STK500v2, avrdude -c wiring),
// run on simavr's ATmega2560 by StartOptiboot like the optiboot builds.
const WiringMega2560 = "stk500boot_v2_mega2560.hex"

// OptibootOverflow is what the harness says of a build that reaches past
// the part's flash.
const OptibootOverflow = "runs past the atmega328p's 32 KiB of flash"

// OptibootBuilds lists the three builds.
var OptibootBuilds = []string{OptibootQuick, OptibootFlashes, OptibootStock}

// Optiboot is real optiboot running on simavr's ATmega328P, its UART0 on a
// pseudo-terminal (Path).
type Optiboot struct {
	*Peer
	Build  string
	resets int
}

var uart0 = regexp.MustCompile(`^uart0: (/dev/\S+)`)

// StartOptiboot runs the named build (OptibootQuick, ...) in the harness
// scripts/peers/optiboot.sh builds, and returns once its pseudo-terminal
// is there. The part starts as if its reset line had just been released;
// the harness resets it again whenever optiboot starts the application
// (the flash holds none), so optiboot always comes back. It is stopped
// when the test ends.
func StartOptiboot(t testing.TB, build string) *Optiboot {
	t.Helper()
	dir := filepath.Join(Dir(), "optiboot")
	bring := "scripts/peers/optiboot.sh builds it (`make deps`, or run the script)"
	harness := NeedFile(t, filepath.Join(dir, "harness"), bring)
	hex := NeedFile(t, filepath.Join(dir, build), bring)
	argv := []string{harness, hex}
	if build == WiringMega2560 {
		argv = []string{harness, "-m", "atmega2560", hex}
	}
	p := Start(t, uart0, 20*time.Second, argv...)
	return &Optiboot{Peer: p, Build: build}
}

// Reset pulses the part's reset line (the harness's SIGUSR1) and returns
// once the harness has reset the part: optiboot then runs from its first
// instruction with MCUSR = EXTRF.
func (o *Optiboot) Reset() error {
	o.resets++
	want := fmt.Sprintf("reset %d\n", o.resets)
	if err := o.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("peertest: reset simavr: %w", err)
	}
	// The harness acts on the signal between two instructions; this
	// waits for it to say so.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(o.Output(), want) {
		if time.Now().After(deadline) {
			return fmt.Errorf("peertest: simavr did not report %q within 10 s", strings.TrimSpace(want))
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// OptibootRefused reports whether build is a file that no programmer would
// put on an ATmega328P because it runs past the flash (Debian's stock hex
// does, see OptibootStock). When it does, it checks that the harness
// refuses it with a message saying so, and logs the finding; the caller
// then has nothing to run.
func OptibootRefused(t testing.TB, build string) bool {
	t.Helper()
	dir := filepath.Join(Dir(), "optiboot")
	bring := "scripts/peers/optiboot.sh builds it (`make deps`, or run the script)"
	hex := NeedFile(t, filepath.Join(dir, build), bring)
	harness := NeedFile(t, filepath.Join(dir, "harness"), bring)
	data, err := os.ReadFile(hex)
	if err != nil {
		t.Fatal(err)
	}
	// The highest address the data records reach (this file has no
	// extended address records; a parser that refuses overlaps refuses it
	// anyway: its version word at 0x7FFE lands on code).
	end := 0
	for _, l := range strings.Fields(string(data)) {
		var n, a, typ int
		if _, err := fmt.Sscanf(l, ":%02X%04X%02X", &n, &a, &typ); err == nil && typ == 0 {
			end = max(end, a+n)
		}
	}
	if end <= 32*1024 {
		return false
	}
	out, err := exec.Command(harness, hex).CombinedOutput()
	if err == nil || !strings.Contains(string(out), OptibootOverflow) {
		t.Fatalf("harness %s = %v, want a refusal saying it %s:\n%s", build, err, OptibootOverflow, out)
	}
	t.Logf("%s reaches 0x%04X, past the 32 KiB flash: no ATmega328P can run it (the harness refuses it; %s is the same code where it fits)",
		build, end-1, OptibootFlashes)
	return true
}

// AppStarts returns how many times optiboot has started the application
// (run out its watchdog, or obeyed LEAVE_PROGMODE).
func (o *Optiboot) AppStarts() int {
	return strings.Count(o.Output(), "app start ")
}
