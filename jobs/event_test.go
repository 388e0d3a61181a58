package jobs

import (
	"testing"
)

func TestBusDropsForSlowSubscribers(t *testing.T) {
	var b Bus
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	for i := range 10 {
		b.Publish(Event{Slot: 1, Kind: KindProgress, Done: int64(i), Total: 10})
	}
	if got := slow.Dropped(); got != 8 {
		t.Errorf("slow subscriber Dropped() = %d, want 8", got)
	}
	if got := fast.Dropped(); got != 0 {
		t.Errorf("fast subscriber Dropped() = %d, want 0", got)
	}
	if e := <-fast.C; e.Done != 0 || e.Time.IsZero() {
		t.Errorf("first event = %+v, want Done 0 with a time", e)
	}
	slow.Close()
	slow.Close() // twice is fine
	if _, ok := <-slow.C; !ok {
		t.Error("a closed subscription lost its buffered events")
	}
}

func TestTrackerFollowsTheBus(t *testing.T) {
	var b Bus
	tr := NewTracker(map[int]string{1: "slot 1", 2: "slot 2"})
	b.Track(tr)
	b.Publish(Event{Slot: 1, Kind: KindState, State: Present})
	b.Publish(Event{Slot: 1, Attempt: 7, Kind: KindState, State: Running, Recipe: "r"})
	b.Publish(Event{Slot: 1, Kind: KindStep, Step: "write app"})
	b.Publish(Event{Slot: 1, Kind: KindProgress, Done: 512, Total: 2048, Serial: "SN1"})
	s, _ := tr.Slot(1)
	if s.State != Running || s.Step != "write app" || s.Progress != 0.25 || s.Serial != "SN1" || s.Attempt != 7 {
		t.Errorf("slot 1 = %+v, want running write app at 0.25 for SN1", s)
	}
	b.Publish(Event{Slot: 1, Kind: KindState, State: Failed, Class: "verify-mismatch", Fault: UnitFault, Hint: "repair", Text: "verify failed"})
	s, _ = tr.Slot(1)
	if s.State != Failed || s.Class != "verify-mismatch" || s.Hint != "repair" || s.Step != "write app" {
		t.Errorf("slot 1 = %+v, want failed with class and hint, keeping the step it failed in", s)
	}
	b.Publish(Event{Slot: 1, Kind: KindState, State: Empty})
	s, _ = tr.Slot(1)
	if s.State != Empty || s.Serial != "" || s.Name != "slot 1" {
		t.Errorf("slot 1 after the unit left = %+v, want empty, named", s)
	}
	if got := tr.Slots(); len(got) != 2 || got[0].Slot != 1 || got[1].Slot != 2 || got[1].State != Empty {
		t.Errorf("Slots() = %+v", got)
	}
}

// TestConsoleOnlyToSubscribersThatAsk checks that the units' console text
// fills no queue of a subscriber that did not ask for it.
func TestConsoleOnlyToSubscribersThatAsk(t *testing.T) {
	var b Bus
	tiles := b.Subscribe(4)
	console := b.SubscribeConsole(100)
	for range 50 {
		b.Publish(Event{Slot: 1, Kind: KindConsole, Text: "U-Boot 2024.01\r\n"})
	}
	b.Publish(Event{Slot: 1, Kind: KindState, State: Passed})
	if got := tiles.Dropped(); got != 0 {
		t.Errorf("tile subscriber Dropped() = %d after 50 console chunks, want 0", got)
	}
	if e := <-tiles.C; e.Kind != KindState {
		t.Errorf("tile subscriber's first event = %+v, want the state", e)
	}
	if got := len(console.C); got != 51 {
		t.Errorf("console subscriber holds %d events, want 51", got)
	}
}
