package serialport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial/enumerator"
)

// ByPathDir is where udev links serial ports by their place in the USB
// topology.
const ByPathDir = "/dev/serial/by-path"

// ErrNoPort is matched (errors.Is) when no port matches: nothing plugged in.
var ErrNoPort = errors.New("no such serial port")

// ErrAmbiguous is matched (errors.Is) when a match fits more than one port.
var ErrAmbiguous = errors.New("more than one serial port matches")

// Match says which port is a slot's. Exactly one of Path, ByPath and USB is
// set; it has the shape of fixtures.Port.
type Match struct {
	Path   string // a device or a link to one
	ByPath string // a name under ByPathDir, or a full path there
	USB    *USB
}

// USB matches a USB serial adapter by its descriptor. Empty fields match
// anything; VID and PID are hex, any case.
type USB struct {
	VID, PID string
	Serial   string
	// Interface selects one port of a multi-port adapter (FT2232H, FT4232H)
	// by its USB interface number; -1 matches any.
	Interface int
}

func (m Match) String() string {
	switch {
	case m.Path != "":
		return m.Path
	case m.ByPath != "":
		return "by-path " + filepath.Base(m.ByPath)
	case m.USB != nil:
		s := "usb " + or(m.USB.VID, "*") + ":" + or(m.USB.PID, "*")
		if m.USB.Serial != "" {
			s += " serial " + m.USB.Serial
		}
		if m.USB.Interface >= 0 {
			s += " interface " + strconv.Itoa(m.USB.Interface)
		}
		return s
	}
	return "no port"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Opener resolves and opens ports. The zero value looks at the real /dev
// and /sys and sets FTDI latency timers to 1 ms.
type Opener struct {
	// ByPathDir is where by-path links live; "" is ByPathDir.
	ByPathDir string
	// SysRoot is where sysfs is mounted; "" is /sys.
	SysRoot string
	// List enumerates serial ports with their USB details; nil is
	// go.bug.st/serial/enumerator's GetDetailedPortsList.
	List func() ([]*enumerator.PortDetails, error)
	// Latency is the latency timer to set on adapters that have one; 0 is
	// 1 ms, negative leaves the timer alone.
	Latency time.Duration
	// Status asks the adapter behind an opened path whether it still
	// works, for Port.Check; nil asks the adapter its modem status. The
	// virtual bench answers for its simulated adapters.
	Status func(path string) error
}

func (o *Opener) byPathDir() string { return or(o.ByPathDir, ByPathDir) }
func (o *Opener) sysRoot() string   { return or(o.SysRoot, "/sys") }

func (o *Opener) list() ([]*enumerator.PortDetails, error) {
	if o.List != nil {
		return o.List()
	}
	return enumerator.GetDetailedPortsList()
}

// Open resolves m and opens the port it names.
func (o *Opener) Open(m Match, mode Mode) (*Port, error) {
	path, err := o.Resolve(m)
	if err != nil {
		return nil, err
	}
	return o.OpenPath(path, mode)
}

// Resolve returns the path of the one port m matches right now: the link
// itself for Path and ByPath, the device for USB. It returns an error
// matching ErrNoPort when none does, ErrAmbiguous when several do.
func (o *Opener) Resolve(m Match) (string, error) {
	switch {
	case m.Path != "":
		if _, err := os.Stat(m.Path); err != nil {
			return "", fmt.Errorf("port %s: %w (is the unit's cable plugged in?)", m.Path, ErrNoPort)
		}
		return m.Path, nil
	case m.ByPath != "":
		p := m.ByPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(o.byPathDir(), p)
		}
		if _, err := os.Stat(p); err != nil {
			hint := "nothing is plugged into that hub port"
			if names := o.byPathNames(); len(names) > 0 {
				hint += "; present: " + strings.Join(names, ", ")
			}
			return "", fmt.Errorf("port %s: %w (%s)", p, ErrNoPort, hint)
		}
		return p, nil
	case m.USB != nil:
		return o.resolveUSB(m)
	}
	return "", fmt.Errorf("port match is empty: give a path, a by-path link or a USB adapter")
}

func (o *Opener) byPathNames() []string {
	es, err := os.ReadDir(o.byPathDir())
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func hexEq(a, b string) bool {
	x, err1 := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(a), "0x"), 16, 16)
	y, err2 := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(b), "0x"), 16, 16)
	return err1 == nil && err2 == nil && x == y
}

// Interface returns the USB interface number of the tty device dev (its
// base name, like ttyUSB0), read from sysfs, or -1.
func (o *Opener) Interface(dev string) int {
	link := filepath.Join(o.sysRoot(), "class", "tty", filepath.Base(dev), "device")
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return -1
	}
	// cdc-acm: the device is the interface; usb-serial: its parent is.
	for _, dir := range []string{real, filepath.Dir(real)} {
		b, err := os.ReadFile(filepath.Join(dir, "bInterfaceNumber"))
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 8)
		if err == nil {
			return int(n)
		}
	}
	return -1
}

func describe(p *enumerator.PortDetails) string {
	s := fmt.Sprintf("%s (usb %s:%s", p.Name, strings.ToLower(p.VID), strings.ToLower(p.PID))
	if p.SerialNumber != "" {
		s += " serial " + p.SerialNumber
	}
	return s + ")"
}

func (o *Opener) resolveUSB(m Match) (string, error) {
	ports, err := o.list()
	if err != nil {
		return "", fmt.Errorf("port %s: list USB serial ports: %w", m, err)
	}
	u := m.USB
	var hits, usb []*enumerator.PortDetails
	for _, p := range ports {
		if !p.IsUSB {
			continue
		}
		usb = append(usb, p)
		if u.VID != "" && !hexEq(u.VID, p.VID) || u.PID != "" && !hexEq(u.PID, p.PID) ||
			u.Serial != "" && u.Serial != p.SerialNumber {
			continue
		}
		if u.Interface >= 0 && o.Interface(p.Name) != u.Interface {
			continue
		}
		hits = append(hits, p)
	}
	slices.SortFunc(hits, func(a, b *enumerator.PortDetails) int { return strings.Compare(a.Name, b.Name) })
	switch len(hits) {
	case 1:
		return hits[0].Name, nil
	case 0:
		var present []string
		for _, p := range usb {
			present = append(present, describe(p))
		}
		hint := "no USB serial adapter is plugged in"
		if len(present) > 0 {
			hint = "present: " + strings.Join(present, ", ")
		}
		return "", fmt.Errorf("port %s: %w (%s)", m, ErrNoPort, hint)
	}
	var names []string
	for _, p := range hits {
		names = append(names, describe(p))
	}
	return "", fmt.Errorf("port %s: %w: %s (add the serial number or the interface to the match, or match by by_path)",
		m, ErrAmbiguous, strings.Join(names, ", "))
}
