// Package bootloader holds what the protocol clients under it share: the
// Port they talk over, reads with deadlines that honour a context, the
// timeout error, and progress reporting.
//
// The protocol packages (stm32, esprom, avr, uboot, ymodem) never open a
// port themselves. They take a Port, which go.bug.st/serial's serial.Port
// satisfies, as does the device side of the simulator's line model in tests.
package bootloader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Port is a serial link to a unit.
//
// SetReadTimeout makes a later Read return (0, nil) when no byte arrived
// within d, as go.bug.st/serial does; a Read that returns (0, nil) is
// therefore not an end of stream. A negative d blocks until a byte arrives.
type Port interface {
	io.ReadWriter
	SetReadTimeout(d time.Duration) error
}

// InputResetter is implemented by ports that can discard bytes received but
// not yet read (go.bug.st/serial's ResetInputBuffer).
type InputResetter interface {
	ResetInputBuffer() error
}

// ModemLines is implemented by ports whose adapter drives DTR and RTS, used
// by auto-reset circuits on development boards. A pseudo-terminal has none.
type ModemLines interface {
	SetDTR(bool) error
	SetRTS(bool) error
}

// BaudSetter is implemented by ports that can change their line rate while
// open, for protocols that negotiate a faster rate (ESP's CHANGE_BAUDRATE).
type BaudSetter interface {
	SetBaud(baud int) error
}

// ParitySetter is implemented by ports that can change their parity
// ("none", "even", "odd") while open: the STM32 system bootloader speaks
// 8E1, and the application it starts usually prints its console at 8N1.
type ParitySetter interface {
	SetParity(parity string) error
}

// Progress reports how many bytes of a transfer are done out of total.
// It is called from the client's goroutine and must not block.
type Progress func(done, total int64)

// TimeoutError says the unit did not answer in time. It matches
// os.ErrDeadlineExceeded with errors.Is.
type TimeoutError struct {
	Op    string        // what the client was waiting for, e.g. "ACK after WRITE"
	After time.Duration // how long it waited
	Got   int           // how many bytes of the expected answer had arrived
}

func (e *TimeoutError) Error() string {
	if e.Got > 0 {
		return fmt.Sprintf("timeout after %v waiting for %s (%d bytes arrived)", e.After, e.Op, e.Got)
	}
	return fmt.Sprintf("timeout after %v waiting for %s: no answer", e.After, e.Op)
}

// Is reports whether target is os.ErrDeadlineExceeded.
func (e *TimeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// poll bounds one blocking Read so that a cancelled context is noticed.
const poll = 50 * time.Millisecond

// Conn adds deadline reads to a Port. It is not safe for concurrent use; a
// protocol client owns one.
type Conn struct {
	p       Port
	timeout time.Duration // last value given to SetReadTimeout, to skip repeats
}

// NewConn returns a Conn reading from p.
func NewConn(p Port) *Conn { return &Conn{p: p, timeout: -2} }

// Port returns the underlying port.
func (c *Conn) Port() Port { return c.p }

// Write writes all of b.
func (c *Conn) Write(b []byte) error {
	_, err := c.p.Write(b)
	return err
}

func (c *Conn) setTimeout(d time.Duration) error {
	if d == c.timeout {
		return nil
	}
	c.timeout = d
	return c.p.SetReadTimeout(d)
}

// ReadFull fills b, waiting at most wait for all of it, and returns early with
// ctx's error when ctx is done. op names the awaited answer in a TimeoutError.
func (c *Conn) ReadFull(ctx context.Context, b []byte, wait time.Duration, op string) error {
	deadline := time.Now().Add(wait)
	n := 0
	for n < len(b) {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return &TimeoutError{Op: op, After: wait, Got: n}
		}
		if left > poll {
			left = poll
		}
		// serial ports measure timeouts in milliseconds; never ask for zero,
		// which would mean "do not wait" and spin.
		if left < time.Millisecond {
			left = time.Millisecond
		}
		if err := c.setTimeout(left); err != nil {
			return err
		}
		m, err := c.p.Read(b[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) && n < len(b) {
				return io.ErrUnexpectedEOF
			}
			if n == len(b) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Byte reads one byte within wait.
func (c *Conn) Byte(ctx context.Context, wait time.Duration, op string) (byte, error) {
	var b [1]byte
	err := c.ReadFull(ctx, b[:], wait, op)
	return b[0], err
}

// ReadSome reads at least one byte into b within wait and returns how many
// were read, without waiting for b to fill.
func (c *Conn) ReadSome(ctx context.Context, b []byte, wait time.Duration, op string) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, &TimeoutError{Op: op, After: wait}
		}
		left = max(min(left, poll), time.Millisecond)
		if err := c.setTimeout(left); err != nil {
			return 0, err
		}
		n, err := c.p.Read(b)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Discard reads and drops whatever arrives until the line has been quiet for
// quiet, or until at most max has passed. It returns the number of bytes
// dropped. Use it to resynchronise after garbage or a failed command.
func (c *Conn) Discard(ctx context.Context, quiet, most time.Duration) (int, error) {
	if r, ok := c.p.(InputResetter); ok {
		_ = r.ResetInputBuffer()
	}
	var buf [256]byte
	end := time.Now().Add(most)
	total := 0
	for time.Now().Before(end) {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := c.ReadSome(ctx, buf[:], quiet, "quiet line")
		total += n
		if err != nil {
			var te *TimeoutError
			if errors.As(err, &te) {
				return total, nil
			}
			return total, err
		}
	}
	return total, nil
}

// ErrNoReset, wrapped in what a client's Reset hook returns, says the hook
// had no way to reset the unit (no lines wired to it, an adapter without
// modem lines): the unit must be in its bootloader already, and there is no
// start-up to wait for. The clients then carry on without their reset
// delay.
var ErrNoReset = errors.New("no way to reset the unit")

// Sleep waits d or until ctx is done, and returns ctx's error if it is. A
// d of zero or less only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
