package serialport

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Check reports whether the port and its adapter still work, apart from
// whether the unit behind them answers: its path and device node are still
// there, and the adapter still answers its modem status request (a USB
// adapter does, without the unit). A pseudo-terminal has no modem status;
// for it only the paths count. The error of a vanished port wraps ErrGone
// and ENODEV.
func (p *Port) Check() error {
	for _, path := range []string{p.Path, p.Device} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return &goneError{path: p.Path, op: "check " + path, err: fmt.Errorf("%w (%v)", syscall.ENODEV, err)}
		}
	}
	if p.status != nil {
		if err := p.status(p.Path); err != nil {
			return fmt.Errorf("%s: %w", p.Path, err)
		}
		return nil
	}
	if _, err := p.p.GetModemStatusBits(); err != nil && !errors.Is(err, syscall.ENOTTY) && !errors.Is(err, syscall.EINVAL) {
		if w := p.wrap("modem status", err); errors.Is(w, ErrGone) {
			return w
		}
		return fmt.Errorf("%s: the adapter does not answer its modem status request: %w", p.Path, err)
	}
	return nil
}
