package peertest

import (
	"fmt"
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
	// OptibootStock is Arduino's prebuilt optiboot_atmega328.hex (optiboot
	// 4.4, LED_START_FLASHES=3), the bootloader of a stock Uno.
	OptibootStock = "optiboot_atmega328_stock.hex"
)

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
	p := Start(t, uart0, 20*time.Second, harness, hex)
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

// AppStarts returns how many times optiboot has started the application
// (run out its watchdog, or obeyed LEAVE_PROGMODE).
func (o *Optiboot) AppStarts() int {
	return strings.Count(o.Output(), "app start ")
}
