package sim

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

var errDeadline = os.ErrDeadlineExceeded

// PTY is the device side of a Linux pseudo-terminal pair. The station (or
// stm32flash, avrdude, sb...) opens Path exactly as it opens /dev/ttyUSB0.
//
// The PTY keeps its own handle on the host side open, so that the host
// closing and reopening the port is not an end of line for the unit, and
// sets it raw, so nothing the unit prints before the host opens it is
// echoed back.
type PTY struct {
	master *os.File
	slave  *os.File
	link   string

	closeOnce sync.Once
}

var _ Transport = (*PTY)(nil)
var _ HostRater = (*PTY)(nil)
var _ HostFramer = (*PTY)(nil)

// OpenPTY creates a pseudo-terminal pair. If link is not empty, a symbolic
// link at that path points to the host side (replacing an older link, never
// a regular file), so the unit has a stable name like /dev/serial/by-path.
func OpenPTY(link string) (*PTY, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("sim: open pseudo-terminal: %w", err)
	}
	// creack/pty leaves the master in blocking mode, where Close waits for a
	// pending Read and the host never sees the port vanish. Take a pollable
	// copy of it instead.
	nfd, err := unix.Dup(int(m.Fd()))
	if err == nil {
		err = unix.SetNonblock(nfd, true)
	}
	m.Close()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sim: pseudo-terminal master: %w", err)
	}
	m = os.NewFile(uintptr(nfd), "/dev/ptmx")
	p := &PTY{master: m, slave: s}
	if err := makeRaw(s); err != nil {
		p.Close()
		return nil, fmt.Errorf("sim: set %s raw: %w", s.Name(), err)
	}
	if link != "" {
		if fi, err := os.Lstat(link); err == nil {
			if fi.Mode()&os.ModeSymlink == 0 {
				p.Close()
				return nil, fmt.Errorf("sim: %s exists and is not a symbolic link; remove it or choose another --link", link)
			}
			os.Remove(link)
		}
		if err := os.Symlink(s.Name(), link); err != nil {
			p.Close()
			return nil, fmt.Errorf("sim: link %s -> %s: %w", link, s.Name(), err)
		}
		p.link = link
	}
	return p, nil
}

// Path returns the host side's path: the link if one was made.
func (p *PTY) Path() string {
	if p.link != "" {
		return p.link
	}
	return p.slave.Name()
}

// Device returns the host side's device path (/dev/pts/N).
func (p *PTY) Device() string { return p.slave.Name() }

func (p *PTY) Read(b []byte) (int, error)  { return p.master.Read(b) }
func (p *PTY) Write(b []byte) (int, error) { return p.master.Write(b) }

// SetWriteDeadline bounds a write that blocks because the host stopped reading.
func (p *PTY) SetWriteDeadline(t time.Time) error { return p.master.SetWriteDeadline(t) }

// Close closes both sides; a host holding the port open sees it vanish. The
// link is removed if it still points to this terminal.
func (p *PTY) Close() error {
	var err error
	p.closeOnce.Do(func() {
		if p.link != "" {
			if dst, e := os.Readlink(p.link); e == nil && dst == p.slave.Name() {
				os.Remove(p.link)
			}
		}
		err = errors.Join(p.master.Close(), p.slave.Close())
	})
	return err
}

// HostBaud returns the line rate the host configured on its side.
func (p *PTY) HostBaud() (int, error) {
	var t *unix.Termios
	var ierr error
	rc, err := p.master.SyscallConn()
	if err != nil {
		return 0, err
	}
	err = rc.Control(func(fd uintptr) { t, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS2) })
	if err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, ierr
	}
	if t.Cflag&unix.CBAUD == unix.BOTHER {
		return int(t.Ospeed), nil
	}
	if b, ok := bauds[t.Cflag&unix.CBAUD]; ok {
		return b, nil
	}
	return 0, fmt.Errorf("sim: unknown baud code %#o", t.Cflag&unix.CBAUD)
}

// HostLine returns how the host set its side up, as far as the terminal
// keeps it. Linux clears PARENB (and forces CS8) on a pseudo-terminal
// whatever the host asks (drivers/tty/pty.c, pty_set_termios), so the
// parity asked for is read from what survives: INPCK, which the host sets
// exactly when it enables parity (go.bug.st/serial serial_unix.go
// setTermSettingsParity; stm32flash serial_posix.c serial_setup), PARODD
// and CMSPAR for which parity, CSTOPB for the stop bits, IGNPAR for what its
// driver does with bytes received in error. A host that sets PARENB
// without INPCK is taken for 8N1.
func (p *PTY) HostLine() (HostLine, bool, error) {
	var t *unix.Termios
	var ierr error
	rc, err := p.master.SyscallConn()
	if err != nil {
		return HostLine{}, false, err
	}
	err = rc.Control(func(fd uintptr) { t, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	if err != nil {
		return HostLine{}, false, err
	}
	if ierr != nil {
		return HostLine{}, false, ierr
	}
	return hostLine(t), true, nil
}

func hostLine(t *unix.Termios) HostLine {
	var h HostLine
	if t.Iflag&unix.INPCK != 0 {
		h.Check = true
		h.Ignore = t.Iflag&unix.IGNPAR != 0
		odd := t.Cflag&unix.PARODD != 0
		switch {
		case t.Cflag&unix.CMSPAR != 0 && odd:
			h.Framing.Parity = ParityMark
		case t.Cflag&unix.CMSPAR != 0:
			h.Framing.Parity = ParitySpace
		case odd:
			h.Framing.Parity = ParityOdd
		default:
			h.Framing.Parity = ParityEven
		}
	}
	if t.Cflag&unix.CSTOPB != 0 {
		h.Framing.StopBits = 2
	}
	return h
}

var bauds = map[uint32]int{
	unix.B50: 50, unix.B75: 75, unix.B110: 110, unix.B134: 134, unix.B150: 150, unix.B200: 200,
	unix.B300: 300, unix.B600: 600, unix.B1200: 1200, unix.B1800: 1800, unix.B2400: 2400,
	unix.B4800: 4800, unix.B9600: 9600, unix.B19200: 19200, unix.B38400: 38400, unix.B57600: 57600,
	unix.B115200: 115200, unix.B230400: 230400, unix.B460800: 460800, unix.B500000: 500000,
	unix.B576000: 576000, unix.B921600: 921600, unix.B1000000: 1000000, unix.B1152000: 1152000,
	unix.B1500000: 1500000, unix.B2000000: 2000000, unix.B2500000: 2500000, unix.B3000000: 3000000,
	unix.B3500000: 3500000, unix.B4000000: 4000000,
}

func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		t, e := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if e != nil {
			ierr = e
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		ierr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return ierr
}
