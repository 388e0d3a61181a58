package ubootsim

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestDifferentialRealLoadyBaud holds the first line of loady ADDR BAUD
// against real U-Boot: "## Switch baudrate to B bps and press ENTER ...".
// What follows cannot be compared here: after that line the real U-Boot
// under QEMU (Debian's qemu_arm build, QEMU's PL011 on a pty) answers
// nothing at all, whatever is sent and at whichever rate, so the model's
// behaviour after the switch rests on cmd/load.c alone (see FIDELITY.md).
func TestDifferentialRealLoadyBaud(t *testing.T) {
	port, rc := realPrompt(t)
	const enter = "press ENTER ...\r\n"
	port.Write([]byte(expand("loady $A 921600", true) + "\r"))
	real := normalise(rc.readUntil(enter, 10*time.Second), true)

	var model string
	synctest.Test(t, func(t *testing.T) {
		mu := newUnit(t, Options{BootDelay: time.Second})
		mu.stop()
		mu.host.Write([]byte(expand("loady $A 921600", false) + "\r"))
		model = normalise(mu.readUntil(enter, 10*time.Second), false)
	})
	if real != model {
		t.Errorf("loady ADDR 921600 up to press ENTER:\n real  %q\n model %q", real, model)
	}
}
