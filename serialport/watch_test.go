package serialport

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// next returns the next event, failing if none comes within d of fake time.
func next(t *testing.T, ch <-chan Event, d time.Duration) Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return Event{}
}

func none(t *testing.T, ch <-chan Event) {
	t.Helper()
	synctest.Wait()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %v", e)
	default:
	}
}

func TestWatchPlugAndUnplug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBench(t)
		devA := f.usb("ttyUSB0", "0403", "6001", "A10K", "0", "1.1")
		o := f.opener()
		link2 := filepath.Join(f.dev, "slot2")
		ctx, cancel := context.WithCancel(t.Context())
		ch := o.Watch(ctx, 0, map[int]Match{
			1: {USB: &USB{Serial: "A10K", Interface: -1}},
			2: {Path: link2},
			3: {USB: &USB{VID: "0403", Interface: -1}},
		})
		start := time.Now()
		// What is present at the start is reported first.
		e := next(t, ch, time.Second)
		if e.Key != 1 || e.Change != Appeared || e.Path != devA || !e.Time.Equal(start) {
			t.Errorf("first event = %+v, want slot 1 appeared at %s at once", e, devA)
		}
		e = next(t, ch, time.Second)
		if e.Key != 3 || e.Change != Appeared || e.Path != devA {
			t.Errorf("second event = %+v, want slot 3 appeared", e)
		}
		none(t, ch)

		// A unit plugged in is noticed within a second.
		time.Sleep(100 * time.Millisecond)
		plugged := time.Now()
		target := filepath.Join(f.dev, "pts-7")
		must(t, os.WriteFile(target, nil, 0o644))
		must(t, os.Symlink(target, link2))
		e = next(t, ch, time.Second)
		if e.Key != 2 || e.Change != Appeared || e.Path != link2 || e.Device != target {
			t.Errorf("after plugging = %+v, want slot 2 appeared at %s -> %s", e, link2, target)
		}
		if d := e.Time.Sub(plugged); d > time.Second {
			t.Errorf("plug noticed after %v, want within a second", d)
		}
		none(t, ch)

		// A second adapter with the same VID makes slot 3 ambiguous.
		f.usb("ttyUSB1", "0403", "6001", "B20K", "0", "1.2")
		e = next(t, ch, time.Second)
		if e.Key != 3 || e.Change != Vanished || e.Path != devA {
			t.Errorf("after a second adapter = %+v, want slot 3 vanished", e)
		}
		e = next(t, ch, time.Second)
		if e.Key != 3 || e.Change != Trouble || !errors.Is(e.Err, ErrAmbiguous) || !strings.Contains(e.Err.Error(), "more than one") {
			t.Errorf("then = %+v, want slot 3 trouble: more than one port matches", e)
		}
		none(t, ch)

		// Replugged between two looks: the link now leads elsewhere.
		target2 := filepath.Join(f.dev, "pts-8")
		must(t, os.WriteFile(target2, nil, 0o644))
		must(t, os.Remove(link2))
		must(t, os.Symlink(target2, link2))
		e = next(t, ch, time.Second)
		if e.Key != 2 || e.Change != Vanished || e.Device != target {
			t.Errorf("after replug = %+v, want slot 2 vanished (old device %s)", e, target)
		}
		e = next(t, ch, time.Second)
		if e.Key != 2 || e.Change != Appeared || e.Device != target2 {
			t.Errorf("after replug = %+v, want slot 2 appeared (new device %s)", e, target2)
		}

		// Unplugged: the link's target is gone.
		unplugged := time.Now()
		must(t, os.Remove(target2))
		e = next(t, ch, time.Second)
		if e.Key != 2 || e.Change != Vanished || e.Path != link2 {
			t.Errorf("after unplugging = %+v, want slot 2 vanished", e)
		}
		if d := e.Time.Sub(unplugged); d > DefaultInterval {
			t.Errorf("unplug noticed after %v, want within %v", d, DefaultInterval)
		}
		none(t, ch)

		cancel()
		for e := range ch {
			t.Errorf("event after cancel: %v", e)
		}
	})
}
