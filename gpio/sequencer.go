package gpio

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Clock is the time a Sequencer sees. The zero Sequencer uses the time
// package, which a test under testing/synctest sees as fake time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Sequencer limits the inrush current on the bench supply: it never lets
// more than MaxOn power lines switch on within any Window. Later callers wait
// their turn, in the order they asked, until the oldest switch-on in the
// window has aged out. It is safe for concurrent use.
type Sequencer struct {
	maxOn  int
	window time.Duration
	clock  Clock

	turn chan struct{} // held by the one caller checking the window; FIFO

	mu  sync.Mutex
	ons []time.Time // switch-ons still inside the window, oldest first
}

// NewSequencer returns a sequencer allowing maxOn switch-ons within window;
// maxOn <= 0 means no limit. clock nil means real time.
func NewSequencer(maxOn int, window time.Duration, clock Clock) *Sequencer {
	if clock == nil {
		clock = realClock{}
	}
	return &Sequencer{maxOn: maxOn, window: window, clock: clock, turn: make(chan struct{}, 1)}
}

func (s *Sequencer) String() string {
	if s.maxOn <= 0 {
		return "no inrush limit"
	}
	return fmt.Sprintf("at most %d power-ons within %v", s.maxOn, s.window)
}

// Do waits until one more power line may switch on, then runs on (which
// switches it) in its turn, and counts the switch-on at the moment on
// returned: a caller delayed before its switch (a loaded station) cannot
// land inside the next caller's window, and the limit holds for the times
// the lines really switched. If on fails,
// nothing is counted. Its signature fits jobs.Slot's PowerOn hook.
func (s *Sequencer) Do(ctx context.Context, on func() error) error {
	if s == nil || s.maxOn <= 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		return on()
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.turn }()
	if err := s.room(ctx); err != nil {
		return fmt.Errorf("waiting for the bench supply (%s): %w", s, err)
	}
	if err := on(); err != nil {
		return err
	}
	s.mu.Lock()
	s.ons = append(s.ons, s.clock.Now())
	s.mu.Unlock()
	return nil
}

// room waits, holding the turn, until fewer than maxOn switch-ons lie in
// the window.
func (s *Sequencer) room(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		now := s.clock.Now()
		for len(s.ons) > 0 && !now.Before(s.ons[0].Add(s.window)) {
			s.ons = s.ons[1:]
		}
		if len(s.ons) < s.maxOn {
			s.mu.Unlock()
			return nil
		}
		wait := s.ons[0].Add(s.window).Sub(now)
		s.mu.Unlock()
		c, stop := s.clock.NewTimer(wait)
		select {
		case <-c:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

// Recent returns how many switch-ons are inside the window now.
func (s *Sequencer) Recent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	n := 0
	for _, t := range s.ons {
		if now.Before(t.Add(s.window)) {
			n++
		}
	}
	return n
}
