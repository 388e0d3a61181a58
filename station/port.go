package station

import (
	"context"
	"fmt"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/jobs"
)

// serialPort is a port opened through go.bug.st/serial, with the rate
// change the ESP ROM's CHANGE_BAUDRATE needs.
type serialPort struct {
	serial.Port
	mode serial.Mode
}

func (p *serialPort) SetBaud(baud int) error {
	p.mode.BaudRate = baud
	return p.Port.SetMode(&p.mode)
}

// openPath returns an opener for the port at path, opened as a real
// adapter is: without touching DTR/RTS at open (InitialStatusBits nil),
// which a pseudo-terminal refuses and an auto-reset circuit would take as a
// reset.
func openPath(path string) jobs.PortOpener {
	return func(ctx context.Context, m jobs.Mode) (jobs.Port, error) {
		mode := serial.Mode{BaudRate: m.Baud, DataBits: 8, StopBits: serial.OneStopBit}
		switch m.Parity {
		case "even":
			mode.Parity = serial.EvenParity
		case "odd":
			mode.Parity = serial.OddParity
		}
		p, err := serial.Open(path, &mode)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return &serialPort{Port: p, mode: mode}, nil
	}
}

// OpenPort opens the serial port at path as a job would.
func OpenPort(ctx context.Context, path string, m jobs.Mode) (jobs.Port, error) {
	return openPath(path)(ctx, m)
}

// PulseDTR resets a unit through its adapter's DTR line, as an Arduino's
// auto-reset circuit expects.
func PulseDTR(ctx context.Context, ml bootloader.ModemLines) error {
	if err := ml.SetDTR(true); err != nil {
		return fmt.Errorf("the adapter has no DTR line to reset the unit (%v); reset it by hand", err)
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return ml.SetDTR(false)
}
