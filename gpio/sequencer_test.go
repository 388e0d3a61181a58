package gpio_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
)

func powerLines(t *testing.T, bank *gpiosim.Bank, n int) []*gpio.Line {
	t.Helper()
	var ls []*gpio.Line
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("sim:slot%d.power", i)
		ls = append(ls, gpio.NewLine(name, gpio.Power, pgpio.High, bank.MustPin(name)))
	}
	return ls
}

// ons returns the times the timeline shows power lines switched on.
func ons(bank *gpiosim.Bank) []gpiosim.Change {
	var out []gpiosim.Change
	for _, c := range bank.Timeline.Changes() {
		if c.Level == pgpio.High {
			out = append(out, c)
		}
	}
	return out
}

func TestSequencerInrushLimit(t *testing.T) {
	for _, c := range []struct {
		units, maxOn int
		window       time.Duration
		last         time.Duration // when the last unit switches on
	}{
		{8, 2, 200 * time.Millisecond, 600 * time.Millisecond},
		{8, 3, 500 * time.Millisecond, 1000 * time.Millisecond},
		{5, 1, 100 * time.Millisecond, 400 * time.Millisecond},
		{8, 0, time.Second, 0}, // no limit
		{4, 4, time.Second, 0},
	} {
		t.Run(fmt.Sprintf("%d units %d per %v", c.units, c.maxOn, c.window), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bank := gpiosim.NewBank()
				seq := gpio.NewSequencer(c.maxOn, c.window, nil)
				start := time.Now()
				var wg sync.WaitGroup
				for _, l := range powerLines(t, bank, c.units) {
					wg.Go(func() {
						if err := seq.Do(t.Context(), func() error { return l.Set(true) }); err != nil {
							t.Errorf("Do(switch %s on) = %v", l, err)
						}
					})
				}
				wg.Wait()
				got := ons(bank)
				if len(got) != c.units {
					t.Fatalf("timeline has %d power-ons, want %d:\n%v", len(got), c.units, got)
				}
				for i, a := range got {
					n := 0
					for _, b := range got[i:] {
						if b.Time.Sub(a.Time) < c.window {
							n++
						}
					}
					if c.maxOn > 0 && n > c.maxOn {
						t.Errorf("%d power-ons within %v of %v, want at most %d:\n%v", n, c.window, a, c.maxOn, got)
					}
				}
				if d := got[len(got)-1].Time.Sub(start); d != c.last {
					t.Errorf("last power-on after %v, want %v (no more waiting than the limit needs)", d, c.last)
				}
			})
		})
	}
}

func TestSequencerFirstComeFirstServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bank := gpiosim.NewBank()
		seq := gpio.NewSequencer(1, 100*time.Millisecond, nil)
		lines := powerLines(t, bank, 4)
		var wg sync.WaitGroup
		for _, l := range lines {
			wg.Go(func() { _ = seq.Do(t.Context(), func() error { return l.Set(true) }) })
			synctest.Wait() // each caller is blocked before the next asks
		}
		wg.Wait()
		got := ons(bank)
		for i, c := range got {
			if c.Pin != lines[i].Name {
				t.Errorf("power-on %d = %s, want %s (the order they asked)", i, c.Pin, lines[i].Name)
			}
		}
	})
}

func TestSequencerHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seq := gpio.NewSequencer(1, 200*time.Millisecond, nil)
		start := time.Now()
		if err := seq.Do(t.Context(), noop); err != nil {
			t.Fatalf("first Do = %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := seq.Do(ctx, noop); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Do past its deadline = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("cancelled Do returned after %v, want 50ms", d)
		}
		// The cancelled caller switched nothing on: the next waits only
		// for the first switch-on to age out.
		if err := seq.Do(t.Context(), noop); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Errorf("third Do returned after %v, want 200ms", d)
		}
		if n := seq.Recent(); n != 1 {
			t.Errorf("Recent() = %d, want 1", n)
		}
		// A caller queued behind another gives up while waiting its turn.
		var wg sync.WaitGroup
		wg.Go(func() { _ = seq.Do(t.Context(), noop) })
		synctest.Wait()
		ctx2, cancel2 := context.WithCancel(t.Context())
		wg.Go(func() {
			if err := seq.Do(ctx2, noop); !errors.Is(err, context.Canceled) {
				t.Errorf("queued Do after cancel = %v, want Canceled", err)
			}
		})
		synctest.Wait()
		cancel2()
		wg.Wait()
	})
}

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer fires at once and moves the clock to the deadline, so a test
// sees every wait the sequencer asks for without waiting.
func (c *stepClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	c.mu.Unlock()
	return ch, func() bool { return false }
}

func TestSequencerInjectedClock(t *testing.T) {
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	clk := &stepClock{now: start}
	seq := gpio.NewSequencer(2, time.Second, clk)
	var at []time.Duration
	for range 5 {
		if err := seq.Do(context.Background(), noop); err != nil {
			t.Fatal(err)
		}
		at = append(at, clk.Now().Sub(start))
	}
	want := []time.Duration{0, 0, time.Second, time.Second, 2 * time.Second}
	if fmt.Sprint(at) != fmt.Sprint(want) {
		t.Errorf("switch-ons at %v, want %v", at, want)
	}
}

// TestSequencerDoCountsTheSwitch: a switch that takes time (a loaded
// station, a slow expander) is counted when it happened, so the limit holds
// for the real switch times.
func TestSequencerDoCountsTheSwitch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const k, window = 2, 100 * time.Millisecond
		seq := gpio.NewSequencer(k, window, nil)
		var mu sync.Mutex
		var at []time.Time
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				err := seq.Do(t.Context(), func() error {
					time.Sleep(30 * time.Millisecond) // the switch itself takes time
					mu.Lock()
					at = append(at, time.Now())
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, a := range at {
			n := 0
			for _, b := range at {
				if d := b.Sub(a); d >= 0 && d < window {
					n++
				}
			}
			if n > k {
				t.Fatalf("%d switches within %v of %v; want at most %d (switches at %v)", n, window, a, k, at)
			}
		}
		if len(at) != 6 {
			t.Errorf("%d switches, want 6", len(at))
		}
	})
}

func noop() error { return nil }
