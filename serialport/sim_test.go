package serialport

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// TestSimUnitPlugAndUnplug runs the chain the station runs on the virtual
// bench, in real time: the simulated unit's port appears at its link, the
// watcher notices, the port opens and carries bytes, and when the unit is
// unplugged both the watcher and a blocked reader see it go.
func TestSimUnitPlugAndUnplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "slot1")
	o := &Opener{SysRoot: t.TempDir()}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := o.Watch(ctx, 50*time.Millisecond, map[int]Match{1: {Path: link}})
	wait := func(want Change) Event {
		t.Helper()
		select {
		case e := <-ch:
			if e.Change != want || e.Key != 1 {
				t.Fatalf("event %v, want slot 1 %s", e, want)
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event within 10 s", want)
		}
		return Event{}
	}

	plugged := time.Now()
	unit, err := sim.OpenPTY(link)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer unit.Close()
	e := wait(Appeared)
	if e.Path != link || e.Device != unit.Device() {
		t.Errorf("appeared %s -> %s, want %s -> %s", e.Path, e.Device, link, unit.Device())
	}
	t.Logf("plug noticed after %v", e.Time.Sub(plugged))

	p, err := Open(link, Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := unit.Write([]byte("ready\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.SetReadTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if err != nil || n == 0 || buf[0] != 'r' {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	for n < 7 {
		m, err := p.Read(buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}

	readErr := make(chan error, 1)
	go func() {
		_, err := p.Read(buf)
		readErr <- err
	}()
	unit.Close()
	wait(Vanished)
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrGone) {
			t.Errorf("blocked Read after unplug = %v, want ErrGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Read did not return when the unit was unplugged")
	}
}
