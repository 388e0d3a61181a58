package simbench

import (
	"runtime"
	"testing"
	"weak"
)

// TestRemovedUnitIsFreed: a unit taken off the bench and replaced is not
// kept alive by its slot's lines (a soak replaces 32 units a round; each
// ESP unit holds 4 MiB of flash).
func TestRemovedUnitIsFreed(t *testing.T) {
	b, err := New(t.TempDir(), Kinds())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	add := func(seed uint64) *Unit {
		u, err := b.Add(Spec{Slot: 1, Kind: "esp32", Board: "meter-e", State: Bricked, Seed: seed, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	old := weak.Make(add(1))
	b.Remove(1)
	nu := add(2)
	// The new unit hears its lines.
	if err := nu.Power.Out(true); err != nil {
		t.Fatal(err)
	}
	if !nu.Device.Powered() {
		t.Fatal("the unit added after a removal does not hear its power line")
	}
	nu.Power.Out(false)
	for range 5 {
		runtime.GC()
		if old.Value() == nil {
			return
		}
	}
	t.Error("the removed unit is still reachable after it was replaced")
}
