package jobs

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is a slot's state as the operator sees it.
type State string

// Slot states. A slot goes empty -> present -> running -> passed | failed |
// interrupted; quarantined is set by slot health and cleared by a supervisor.
const (
	Empty       State = "empty"
	Present     State = "present"
	Running     State = "running"
	Passed      State = "passed"
	Failed      State = "failed"
	Interrupted State = "interrupted"
	Quarantined State = "quarantined"
)

// Kind says what an Event reports.
type Kind string

// Event kinds.
const (
	KindState    Kind = "state"    // the slot changed state (State set)
	KindStep     Kind = "step"     // a step started (Step set)
	KindProgress Kind = "progress" // bytes done of total in the current step
	KindConsole  Kind = "console"  // text the unit printed
	KindLog      Kind = "log"      // a line from the station about the job
)

// Fault says whose fault a failure is, so yield figures never blame units
// for a bad cable.
type Fault string

// Faults.
const (
	UnitFault    Fault = "unit"    // the unit misbehaved (bad flash, wrong answer, never booted)
	StationFault Fault = "station" // the bench did (port vanished, line error, adapter timeout)
	RefusedFault Fault = "refused" // the station refused before touching the unit (bad image, wrong revision)
)

// Event is one thing that happened in a slot. Producers never block on
// consumers: see Bus.
type Event struct {
	Time    time.Time `json:"time"`
	Slot    int       `json:"slot"`
	Attempt int64     `json:"attempt,omitempty"`
	Kind    Kind      `json:"kind"`
	State   State     `json:"state,omitempty"`
	Step    string    `json:"step,omitempty"`
	Done    int64     `json:"done,omitempty"`
	Total   int64     `json:"total,omitempty"`
	Text    string    `json:"text,omitempty"`
	Serial  string    `json:"serial,omitempty"`
	Recipe  string    `json:"recipe,omitempty"`
	Class   string    `json:"class,omitempty"` // failure class, e.g. "verify-mismatch"
	Fault   Fault     `json:"fault,omitempty"`
	Hint    string    `json:"hint,omitempty"` // what the operator should do next
}

// Bus fans events out to subscribers. Publish never blocks: a subscriber
// whose buffer is full loses the event and its drop count grows;
// backpressure is a bug in the slow subscriber, never the producer's
// problem. Events from one publisher reach each subscriber in order.
type Bus struct {
	mu       sync.Mutex
	subs     map[*Sub]struct{}
	trackers []*Tracker
}

// Track makes t follow every event published from now on, synchronously:
// unlike a subscriber, a tracker never misses an event, so the slot states
// it holds are exact.
func (b *Bus) Track(t *Tracker) {
	b.mu.Lock()
	b.trackers = append(b.trackers, t)
	b.mu.Unlock()
}

// Sub is one subscription.
type Sub struct {
	C       <-chan Event
	c       chan Event
	console bool // also hears KindConsole events
	dropped atomic.Int64
	bus     *Bus
}

// Dropped returns how many events this subscriber missed.
func (s *Sub) Dropped() int64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Sub) Close() {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// Subscribe returns a subscription buffering up to buf events: every event
// but the units' console text, which goes to the record and only to
// subscribers that ask for it (SubscribeConsole).
func (b *Bus) Subscribe(buf int) *Sub { return b.subscribe(buf, false) }

// SubscribeConsole returns a subscription to every event, the units'
// console text (KindConsole) included.
func (b *Bus) SubscribeConsole(buf int) *Sub { return b.subscribe(buf, true) }

func (b *Bus) subscribe(buf int, console bool) *Sub {
	c := make(chan Event, buf)
	s := &Sub{C: c, c: c, console: console, bus: b}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = make(map[*Sub]struct{})
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish sends e to every subscriber that has room (console text only to
// those that asked for it).
func (b *Bus) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.trackers {
		t.Apply(e)
	}
	for s := range b.subs {
		if e.Kind == KindConsole && !s.console {
			continue
		}
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// SlotStatus is a slot as a tile shows it.
type SlotStatus struct {
	Slot     int       `json:"slot"`
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Step     string    `json:"step"`
	Progress float64   `json:"progress"` // 0..1 within the current step
	Serial   string    `json:"serial"`
	Attempt  int64     `json:"attempt,omitempty"`
	Recipe   string    `json:"recipe,omitempty"`
	Text     string    `json:"text,omitempty"` // last log line or failure reason
	Class    string    `json:"class,omitempty"`
	Fault    Fault     `json:"fault,omitempty"`
	Hint     string    `json:"hint,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Tracker folds events into the current status of every slot. It is safe for
// concurrent use.
type Tracker struct {
	mu    sync.Mutex
	slots map[int]*SlotStatus
	order []int
}

// NewTracker returns a tracker for the given slots (numbers and names), all
// empty.
func NewTracker(slots map[int]string) *Tracker {
	t := &Tracker{slots: make(map[int]*SlotStatus)}
	for n, name := range slots {
		t.slots[n] = &SlotStatus{Slot: n, Name: name, State: Empty}
		t.order = append(t.order, n)
	}
	slices.Sort(t.order)
	return t
}

// Apply folds e into its slot's status.
func (t *Tracker) Apply(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.slots[e.Slot]
	if !ok {
		s = &SlotStatus{Slot: e.Slot, State: Empty}
		t.slots[e.Slot] = s
		t.order = append(t.order, e.Slot)
		slices.Sort(t.order)
	}
	s.Updated = e.Time
	if e.Attempt != 0 && e.Attempt != s.Attempt {
		s.Attempt = e.Attempt
	}
	if e.Serial != "" {
		s.Serial = e.Serial
	}
	if e.Recipe != "" {
		s.Recipe = e.Recipe
	}
	switch e.Kind {
	case KindState:
		s.State = e.State
		switch e.State {
		case Running:
			s.Class, s.Fault, s.Hint, s.Text, s.Progress, s.Step = "", "", "", e.Text, 0, ""
		case Passed:
			s.Progress = 1
			s.Text, s.Class, s.Fault, s.Hint = e.Text, "", "", ""
		case Empty:
			*s = SlotStatus{Slot: s.Slot, Name: s.Name, State: Empty, Updated: e.Time}
		default:
			s.Text, s.Class, s.Fault, s.Hint = e.Text, e.Class, e.Fault, e.Hint
		}
	case KindStep:
		s.Step = e.Step
		s.Progress = 0
		if e.Text != "" {
			s.Text = e.Text
		}
	case KindProgress:
		if e.Total > 0 {
			s.Progress = float64(e.Done) / float64(e.Total)
		}
	case KindLog:
		s.Text = e.Text
	}
}

// Slots returns every slot's status in slot order.
func (t *Tracker) Slots() []SlotStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]SlotStatus, 0, len(t.order))
	for _, n := range t.order {
		out = append(out, *t.slots[n])
	}
	return out
}

// Slot returns one slot's status.
func (t *Tracker) Slot(n int) (SlotStatus, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.slots[n]
	if !ok {
		return SlotStatus{}, false
	}
	return *s, true
}
