package serialport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// newPTY returns a pseudo-terminal's master and the path of its slave, the
// side a station opens as it opens /dev/ttyUSB0.
func newPTY(t testing.TB) (*os.File, string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	name := slave.Name()
	// The station's open is the only one left on the slave side.
	t.Cleanup(func() { master.Close() })
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	return master, name
}

func openT(t *testing.T, o *Opener, path string, m Mode) *Port {
	t.Helper()
	p, err := o.OpenPath(path, m)
	if err != nil {
		t.Fatalf("OpenPath(%s, %+v) = %v", path, m, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestOpenPTY(t *testing.T) {
	master, dev := newPTY(t)
	link := filepath.Join(t.TempDir(), "slot1")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	o := &Opener{SysRoot: t.TempDir()}
	p := openT(t, o, link, Mode{Baud: 115200})
	if p.Device != dev || p.Path != link {
		t.Errorf("Port{Path: %q, Device: %q}, want %q, %q", p.Path, p.Device, link, dev)
	}
	if len(p.Notes) != 0 || p.Latency.File != "" {
		t.Errorf("Notes = %q, Latency = %+v, want none for a pty with 8N1", p.Notes, p.Latency)
	}

	// A timeout is (0, nil), as bootloader.Port requires.
	if err := p.SetReadTimeout(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := p.Read(buf); n != 0 || err != nil {
		t.Errorf("Read with nothing sent = %d, %v; want 0, nil", n, err)
	}

	// Bytes both ways.
	if _, err := master.Write([]byte{0x7f, 0x00, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetReadTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 3 {
		n, err := p.Read(buf)
		if err != nil || n == 0 {
			t.Fatalf("Read = %d, %v", n, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, []byte{0x7f, 0x00, 0xff}) {
		t.Errorf("Read = % x, want 7f 00 ff", got)
	}
	if _, err := p.Write([]byte("ok\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Read(buf); err != nil || string(buf[:n]) != "ok\n" {
		t.Errorf("master read %q, %v; want \"ok\\n\" (raw mode, no echo or translation)", buf[:n], err)
	}

	if err := p.ResetInputBuffer(); err != nil {
		t.Errorf("ResetInputBuffer() = %v", err)
	}
	if err := p.SetBaud(921600); err != nil || p.Baud() != 921600 {
		t.Errorf("SetBaud(921600) = %v, Baud() = %d", err, p.Baud())
	}

	// A pty has no modem lines: say so, in words a job log can carry.
	for name, set := range map[string]func(bool) error{"DTR": p.SetDTR, "RTS": p.SetRTS} {
		err := set(true)
		if !errors.Is(err, ErrNoModemLines) || !strings.Contains(err.Error(), "no modem lines") || !strings.Contains(err.Error(), name) {
			t.Errorf("Set%s(true) on a pty = %v, want ErrNoModemLines naming %s", name, err, name)
		}
	}
}

func TestOpenPTYParityNote(t *testing.T) {
	_, dev := newPTY(t)
	p := openT(t, &Opener{SysRoot: t.TempDir()}, dev, Mode{Baud: 115200, Parity: "even"})
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "pseudo-terminal") || !strings.Contains(p.Notes[0], "even parity") {
		t.Errorf("Notes = %q, want one saying the pty drops even parity", p.Notes)
	}
}

func TestReadAfterUnplug(t *testing.T) {
	master, dev := newPTY(t)
	p := openT(t, &Opener{SysRoot: t.TempDir()}, dev, Mode{Baud: 115200})
	if err := p.SetReadTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	master.Close()
	buf := make([]byte, 8)
	n, err := p.Read(buf)
	if !errors.Is(err, ErrGone) || n != 0 {
		t.Fatalf("Read after the device side closed = %d, %v; want 0, ErrGone", n, err)
	}
	if !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "unplugged") {
		t.Errorf("error %q does not name the port and the likely cause", err)
	}
}

func TestOpenErrors(t *testing.T) {
	_, dev := newPTY(t)
	o := &Opener{SysRoot: t.TempDir()}
	for _, c := range []struct {
		name, path string
		mode       Mode
		is         error
		want       string
	}{
		{"missing", filepath.Join(t.TempDir(), "slot9"), Mode{Baud: 115200}, ErrNoPort, "plugged in"},
		{"dangling link", func() string {
			l := filepath.Join(t.TempDir(), "gone")
			os.Symlink("/dev/pts/999999", l)
			return l
		}(), Mode{Baud: 115200}, ErrNoPort, "no such port"},
		{"bad parity", dev, Mode{Baud: 115200, Parity: "mark"}, nil, `parity "mark"`},
		{"no baud", dev, Mode{}, nil, "baud rate 0"},
		{"not a tty", os.Args[0], Mode{Baud: 9600}, nil, os.Args[0]},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := o.OpenPath(c.path, c.mode)
			if err == nil {
				p.Close()
				t.Fatalf("OpenPath(%s, %+v) = nil error", c.path, c.mode)
			}
			if c.is != nil && !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("OpenPath(%s, %+v) = %v, want %v containing %q", c.path, c.mode, err, c.is, c.want)
			}
		})
	}
}

// fakeLatency makes a sysfs tree under root where tty device name has an
// FTDI latency timer holding value.
func fakeLatency(t *testing.T, root, name, value string) string {
	t.Helper()
	dir := filepath.Join(root, "class", "tty", name, "device")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "latency_timer")
	if err := os.WriteFile(f, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLatencyTimer(t *testing.T) {
	_, dev := newPTY(t)
	name := filepath.Base(dev)
	for _, c := range []struct {
		name     string
		value    string
		latency  time.Duration
		after    time.Duration
		file     string // what the sysfs file holds afterwards
		noteHave string
	}{
		{"default 16 ms set to 1", "16\n", 0, time.Millisecond, "1\n", "from 16ms to 1ms"},
		{"already 1", "1\n", 0, time.Millisecond, "1\n", "is 1ms"},
		{"asked to leave alone", "16\n", -1, 16 * time.Millisecond, "16\n", "is 16ms"},
		{"asked for 4 ms", "16\n", 4 * time.Millisecond, 4 * time.Millisecond, "4\n", "from 16ms to 4ms"},
		{"garbage", "fast\n", 0, 0, "fast\n", "not a number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			f := fakeLatency(t, root, name, c.value)
			p := openT(t, &Opener{SysRoot: root, Latency: c.latency}, dev, Mode{Baud: 115200})
			if p.Latency.File != f || p.Latency.After != c.after {
				t.Errorf("Latency = %+v, want file %s, after %v", p.Latency, f, c.after)
			}
			if b, _ := os.ReadFile(f); string(b) != c.file {
				t.Errorf("latency_timer holds %q, want %q", b, c.file)
			}
			if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], c.noteHave) || !strings.Contains(p.Notes[0], name) {
				t.Errorf("Notes = %q, want one naming %s and saying %q", p.Notes, name, c.noteHave)
			}
		})
	}
	t.Run("cannot write", func(t *testing.T) {
		// A read-only attribute, even for root: the sysctl ngroups_max.
		ro := "/proc/sys/kernel/ngroups_max"
		if _, err := os.Stat(ro); err != nil {
			t.Skipf("no read-only number file to stand in for the timer: %v", err)
		}
		root := t.TempDir()
		dir := filepath.Join(root, "class", "tty", name, "device")
		os.MkdirAll(dir, 0o755)
		if err := os.Symlink(ro, filepath.Join(dir, "latency_timer")); err != nil {
			t.Fatal(err)
		}
		p := openT(t, &Opener{SysRoot: root}, dev, Mode{Baud: 115200})
		if p.Latency.After != p.Latency.Before || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "could not be set to 1 ms") ||
			!strings.Contains(p.Notes[0], "udev") {
			t.Errorf("Latency = %+v, Notes = %q; want the timer left and a note saying how to allow it", p.Latency, p.Notes)
		}
	})
}
