package serialport

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.bug.st/serial/enumerator"
)

// fakeBench is a /dev and /sys for ports a test makes up: device files
// under dev, by-path links under byPath, and USB interface numbers in a
// sysfs laid out as the kernel does.
type fakeBench struct {
	t                *testing.T
	dev, byPath, sys string

	mu      sync.Mutex // the watcher lists while a test plugs
	ports   []*enumerator.PortDetails
	listErr error
}

func newFakeBench(t *testing.T) *fakeBench {
	root := t.TempDir()
	f := &fakeBench{t: t, dev: filepath.Join(root, "dev"), byPath: filepath.Join(root, "by-path"), sys: filepath.Join(root, "sys")}
	for _, d := range []string{f.dev, f.byPath, f.sys} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fakeBench) opener() *Opener {
	return &Opener{ByPathDir: f.byPath, SysRoot: f.sys, List: func() ([]*enumerator.PortDetails, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.ports), f.listErr
	}}
}

// usb adds a USB serial port: a device file, its sysfs entry (a
// usb-serial port under its interface), and a by-path link.
func (f *fakeBench) usb(name, vid, pid, serial, iface, hubPort string) string {
	f.t.Helper()
	dev := filepath.Join(f.dev, name)
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		f.t.Fatal(err)
	}
	intf := filepath.Join(f.sys, "devices", "usb1", "1-"+hubPort, "1-"+hubPort+":1."+iface)
	port := filepath.Join(intf, name)
	must(f.t, os.MkdirAll(port, 0o755))
	must(f.t, os.WriteFile(filepath.Join(intf, "bInterfaceNumber"), []byte("0"+iface+"\n"), 0o644))
	tty := filepath.Join(f.sys, "class", "tty", name)
	must(f.t, os.MkdirAll(tty, 0o755))
	must(f.t, os.Symlink(port, filepath.Join(tty, "device")))
	must(f.t, os.Symlink(dev, filepath.Join(f.byPath, "platform-usb-0:"+hubPort+":1."+iface+"-port0")))
	f.mu.Lock()
	f.ports = append(f.ports, &enumerator.PortDetails{Name: dev, IsUSB: true, VID: vid, PID: pid, SerialNumber: serial})
	f.mu.Unlock()
	return dev
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	f := newFakeBench(t)
	a := f.usb("ttyUSB0", "0403", "6001", "A10K", "0", "1.1")
	b := f.usb("ttyUSB1", "0403", "6001", "B20K", "0", "1.2")
	quad1 := f.usb("ttyUSB2", "0403", "6011", "FT4232A", "1", "1.3")
	quad2 := f.usb("ttyUSB3", "0403", "6011", "FT4232A", "2", "1.3")
	acm := f.usb("ttyACM0", "2E8A", "000A", "E66058", "0", "1.4")
	f.ports = append(f.ports, &enumerator.PortDetails{Name: "/dev/ttyAMA0"}) // not USB
	o := f.opener()
	for _, c := range []struct {
		name string
		m    Match
		want string
		is   error
		has  []string
	}{
		{"path", Match{Path: a}, a, nil, nil},
		{"missing path", Match{Path: filepath.Join(f.dev, "ttyUSB9")}, "", ErrNoPort, []string{"ttyUSB9", "plugged in"}},
		{"by-path name", Match{ByPath: "platform-usb-0:1.2:1.0-port0"}, filepath.Join(f.byPath, "platform-usb-0:1.2:1.0-port0"), nil, nil},
		{"by-path full", Match{ByPath: filepath.Join(f.byPath, "platform-usb-0:1.1:1.0-port0")}, filepath.Join(f.byPath, "platform-usb-0:1.1:1.0-port0"), nil, nil},
		{"by-path nothing there", Match{ByPath: "platform-usb-0:1.9:1.0-port0"}, "", ErrNoPort, []string{"nothing is plugged into that hub port", "present: platform-usb-0:1.1:1.0-port0"}},
		{"usb serial", Match{USB: &USB{VID: "0403", Serial: "B20K", Interface: -1}}, b, nil, nil},
		{"usb vid case and 0x", Match{USB: &USB{VID: "0x0403", PID: "6001", Serial: "A10K", Interface: -1}}, a, nil, nil},
		{"usb lower-case hex", Match{USB: &USB{VID: "2e8a", PID: "000a", Interface: -1}}, acm, nil, nil},
		{"usb interface", Match{USB: &USB{Serial: "FT4232A", Interface: 2}}, quad2, nil, nil},
		{"usb interface 1", Match{USB: &USB{VID: "0403", PID: "6011", Interface: 1}}, quad1, nil, nil},
		{"usb two adapters", Match{USB: &USB{VID: "0403", PID: "6001", Interface: -1}}, "", ErrAmbiguous,
			[]string{"ttyUSB0 (usb 0403:6001 serial A10K)", "ttyUSB1 (usb 0403:6001 serial B20K)", "add the serial number"}},
		{"usb two interfaces", Match{USB: &USB{Serial: "FT4232A", Interface: -1}}, "", ErrAmbiguous, []string{"ttyUSB2", "ttyUSB3", "interface"}},
		{"usb no match", Match{USB: &USB{Serial: "NOPE", Interface: -1}}, "", ErrNoPort, []string{"serial NOPE", "present:", "ttyACM0 (usb 2e8a:000a serial E66058)"}},
		{"empty", Match{}, "", nil, []string{"match is empty"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := o.Resolve(c.m)
			if got != c.want {
				t.Errorf("Resolve(%v) = %q, %v; want %q", c.m, got, err, c.want)
			}
			if c.want != "" {
				if err != nil {
					t.Errorf("Resolve(%v) error = %v", c.m, err)
				}
				return
			}
			if err == nil || c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("Resolve(%v) error = %v, want %v", c.m, err, c.is)
			}
			for _, h := range c.has {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("Resolve(%v) error = %q, want it to contain %q", c.m, err, h)
				}
			}
		})
	}
	t.Run("no USB adapters", func(t *testing.T) {
		o := &Opener{List: func() ([]*enumerator.PortDetails, error) { return nil, nil }}
		_, err := o.Resolve(Match{USB: &USB{VID: "0403", Interface: -1}})
		if !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), "no USB serial adapter is plugged in") {
			t.Errorf("Resolve = %v", err)
		}
	})
	t.Run("enumerator fails", func(t *testing.T) {
		f.mu.Lock()
		f.listErr = errors.New("sysfs unreadable")
		f.mu.Unlock()
		_, err := o.Resolve(Match{USB: &USB{VID: "0403", Interface: -1}})
		if err == nil || !strings.Contains(err.Error(), "sysfs unreadable") {
			t.Errorf("Resolve = %v", err)
		}
	})
}

func TestInterfaceCDCACM(t *testing.T) {
	// cdc-acm links the tty's device to the interface itself.
	root := t.TempDir()
	intf := filepath.Join(root, "devices", "usb1", "1-1", "1-1:1.3")
	must(t, os.MkdirAll(intf, 0o755))
	must(t, os.WriteFile(filepath.Join(intf, "bInterfaceNumber"), []byte("03\n"), 0o644))
	tty := filepath.Join(root, "class", "tty", "ttyACM1")
	must(t, os.MkdirAll(tty, 0o755))
	must(t, os.Symlink(intf, filepath.Join(tty, "device")))
	o := &Opener{SysRoot: root}
	if got := o.Interface("/dev/ttyACM1"); got != 3 {
		t.Errorf("Interface(ttyACM1) = %d, want 3", got)
	}
	if got := o.Interface("/dev/ttyS0"); got != -1 {
		t.Errorf("Interface(ttyS0) = %d, want -1", got)
	}
}
