// Package serialport opens a slot's serial port the way a bench needs it:
// found by a stable identity (a /dev/serial/by-path link, or a USB adapter's
// vendor, product, serial number and interface, never by /dev/ttyUSBn order,
// which changes with every replug), opened through go.bug.st/serial
// (https://pkg.go.dev/go.bug.st/serial) without touching DTR/RTS, with an
// FTDI adapter's latency timer tuned down to 1 ms, and watched for units
// plugged in and out.
//
// A Port satisfies bootloader.Port (a Read after SetReadTimeout returns
// (0, nil) when nothing arrived), io.Closer, bootloader.InputResetter,
// bootloader.BaudSetter and bootloader.ModemLines. On a pseudo-terminal, as
// the virtual bench uses, the modem lines fail with ErrNoModemLines and
// parity is silently dropped by the kernel; Open says so in Port.Notes.
package serialport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"github.com/unbrick/unbrick/bootloader"
)

// Mode is how a port is opened: the line rate and the parity ("none",
// "even" or "odd"; "" is none), always 8 data bits and 1 stop bit. It has
// the shape of jobs.Mode, so one converts to the other.
type Mode struct {
	Baud   int
	Parity string
}

// ErrNoModemLines is returned by SetDTR and SetRTS when the port has no
// modem lines: a pseudo-terminal, or an adapter without DTR/RTS pins.
var ErrNoModemLines = errors.New("the adapter has no modem lines (DTR/RTS)")

// ErrGone is matched (errors.Is) by a Read or Write error that means the
// port vanished under its user: the adapter unplugged, or the simulated
// unit's pseudo-terminal closed.
var ErrGone = errors.New("the serial port vanished")

// Port is an open serial port.
type Port struct {
	Path   string // as given to Open
	Device string // the device it resolved to, e.g. /dev/ttyUSB0
	// Latency is what Open did to the adapter's latency timer.
	Latency Latency
	// Notes say what Open could not do as asked, in words for the job log
	// (parity a pseudo-terminal drops, a latency timer it may not write).
	Notes []string

	p serial.Port

	mu   sync.Mutex
	mode serial.Mode
}

var (
	_ bootloader.Port          = (*Port)(nil)
	_ bootloader.InputResetter = (*Port)(nil)
	_ bootloader.ModemLines    = (*Port)(nil)
	_ bootloader.BaudSetter    = (*Port)(nil)
	_ bootloader.ParitySetter  = (*Port)(nil)
)

func serialMode(m Mode) (serial.Mode, error) {
	if m.Baud <= 0 {
		return serial.Mode{}, fmt.Errorf("baud rate %d: give the rate the unit's UART runs at, e.g. 115200", m.Baud)
	}
	mode := serial.Mode{BaudRate: m.Baud, DataBits: 8, StopBits: serial.OneStopBit}
	switch m.Parity {
	case "", "none":
	case "even":
		mode.Parity = serial.EvenParity
	case "odd":
		mode.Parity = serial.OddParity
	default:
		return serial.Mode{}, fmt.Errorf("parity %q: want none, even or odd", m.Parity)
	}
	return mode, nil
}

// Open opens the port at path (a device or a link to one) with the default
// Opener: latency timer to 1 ms where the adapter has one.
func Open(path string, m Mode) (*Port, error) {
	var o Opener
	return o.OpenPath(path, m)
}

// isPTY reports whether the device is a pseudo-terminal (Unix98 pty
// slaves have majors 136..143).
func isPTY(dev string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return false
	}
	major := unix.Major(uint64(st.Rdev))
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && major >= 136 && major <= 143
}

// OpenPath opens the port at path. It does not touch DTR or RTS
// (InitialStatusBits nil): a pseudo-terminal refuses them, and an
// auto-reset circuit would take the change as a reset.
func (o *Opener) OpenPath(path string, m Mode) (*Port, error) {
	mode, err := serialMode(m)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	dev, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open %s: no such port: %w (is the unit's cable plugged in?)", path, ErrNoPort)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	port := &Port{Path: path, Device: dev, mode: mode}
	port.Latency = o.tuneLatency(dev)
	if port.Latency.Note != "" {
		port.Notes = append(port.Notes, port.Latency.Note)
	}
	p, err := serial.Open(dev, &mode)
	if err != nil {
		return nil, fmt.Errorf("open %s (%s): %w%s", path, dev, err, openHint(err))
	}
	port.p = p
	if mode.Parity != serial.NoParity && isPTY(dev) {
		port.Notes = append(port.Notes, fmt.Sprintf("%s is a pseudo-terminal: the kernel drops the %s parity asked for, so the link runs 8N1", path, m.Parity))
	}
	return port, nil
}

func openHint(err error) string {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		switch pe.Code() {
		case serial.PortBusy:
			return " (another program has the port open: stop it, or check two slots do not name the same adapter)"
		case serial.PermissionDenied:
			return " (add the station's user to the dialout group)"
		}
	}
	return ""
}

// Read implements io.Reader. After SetReadTimeout, a Read that saw nothing
// within the timeout returns (0, nil).
func (p *Port) Read(b []byte) (int, error) {
	n, err := p.p.Read(b)
	if err != nil {
		return n, p.wrap("read", err)
	}
	return n, nil
}

// Write implements io.Writer.
func (p *Port) Write(b []byte) (int, error) {
	n, err := p.p.Write(b)
	if err != nil {
		return n, p.wrap("write", err)
	}
	return n, nil
}

// SetReadTimeout bounds each Read; negative blocks until a byte arrives.
func (p *Port) SetReadTimeout(d time.Duration) error {
	if d < 0 {
		d = serial.NoTimeout
	}
	return p.p.SetReadTimeout(d)
}

// ResetInputBuffer drops bytes received and not yet read.
func (p *Port) ResetInputBuffer() error { return p.wrap("flush input", p.p.ResetInputBuffer()) }

// Drain waits until every byte written has left the port.
func (p *Port) Drain() error { return p.wrap("drain", p.p.Drain()) }

// SetBaud changes the line rate of the open port.
func (p *Port) SetBaud(baud int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.mode
	m.BaudRate = baud
	if err := p.p.SetMode(&m); err != nil {
		return fmt.Errorf("%s: set %d baud: %w", p.Path, baud, err)
	}
	p.mode = m
	return nil
}

// SetParity changes the parity ("none", "even", "odd") of the open port.
func (p *Port) SetParity(parity string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := serialMode(Mode{Baud: p.mode.BaudRate, Parity: parity})
	if err != nil {
		return fmt.Errorf("%s: %w", p.Path, err)
	}
	if err := p.p.SetMode(&m); err != nil {
		return fmt.Errorf("%s: set parity %s: %w", p.Path, parity, err)
	}
	p.mode = m
	return nil
}

// Baud returns the line rate the port runs at.
func (p *Port) Baud() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode.BaudRate
}

// SetDTR drives the adapter's DTR line (asserted = true).
func (p *Port) SetDTR(on bool) error { return p.modem("DTR", p.p.SetDTR(on)) }

// SetRTS drives the adapter's RTS line (asserted = true).
func (p *Port) SetRTS(on bool) error { return p.modem("RTS", p.p.SetRTS(on)) }

func (p *Port) modem(line string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%s: set %s: %w; wire the unit's reset to a GPIO line in the bench file", p.Path, line, ErrNoModemLines)
	}
	return p.wrap("set "+line, err)
}

// Close closes the port. A Read blocked on another goroutine returns.
func (p *Port) Close() error {
	if err := p.p.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", p.Path, err)
	}
	return nil
}

func (p *Port) String() string { return p.Path }

// goneError is an I/O error on a port that vanished.
type goneError struct {
	path, op string
	err      error
}

func (e *goneError) Error() string {
	return fmt.Sprintf("%s: %s: %v: %v (unplugged, or the adapter reset)", e.path, e.op, ErrGone, e.err)
}

func (e *goneError) Unwrap() []error { return []error{ErrGone, e.err} }

func (p *Port) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *serial.PortError
	if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) ||
		(errors.As(err, &pe) && pe.Code() == serial.PortClosed) {
		return &goneError{path: p.Path, op: op, err: err}
	}
	return fmt.Errorf("%s: %s: %w", p.Path, op, err)
}
