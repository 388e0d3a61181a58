package serialport

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCheck: a port whose link and device are there checks out (a pty has
// no modem status to ask, which is not a fault); once its link is gone, or
// its device, Check says the port vanished.
func TestCheck(t *testing.T) {
	master, dev := newPTY(t)
	link := filepath.Join(t.TempDir(), "slot1")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	p := openT(t, &Opener{SysRoot: t.TempDir()}, link, Mode{Baud: 115200})
	if err := p.Check(); err != nil {
		t.Fatalf("Check() on a present port = %v", err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	err := p.Check()
	if !errors.Is(err, ErrGone) || !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("Check() after the link vanished = %v, want ErrGone and ENODEV", err)
	}
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	master.Close() // the device node goes with the master
	if err := p.Check(); !errors.Is(err, ErrGone) {
		t.Fatalf("Check() after the device vanished = %v, want ErrGone", err)
	}
}

// TestCheckAsksTheAdapter: an opener's Status answers for the adapter, and
// a failing answer fails Check without the port having vanished.
func TestCheckAsksTheAdapter(t *testing.T) {
	_, dev := newPTY(t)
	wedged := errors.New("the adapter does not answer its modem status request")
	p := openT(t, &Opener{SysRoot: t.TempDir(), Status: func(path string) error {
		if path != dev {
			t.Errorf("Status(%q), want the opened path %q", path, dev)
		}
		return wedged
	}}, dev, Mode{Baud: 115200})
	if err := p.Check(); !errors.Is(err, wedged) || errors.Is(err, ErrGone) {
		t.Fatalf("Check() with a wedged adapter = %v, want its answer, not a vanished port", err)
	}
}
