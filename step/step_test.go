package step

import (
	"slices"
	"testing"
)

func TestRunsInAndAfter(t *testing.T) {
	for _, c := range []struct {
		kind    Kind
		from    State
		bootSeq bool
		runs    bool
		after   State
	}{
		{KindEnter, Off, false, true, Bootloader},
		{KindEnter, Application, false, true, Bootloader},
		{KindWrite, Off, false, false, Off},
		{KindWrite, Bootloader, false, true, Bootloader},
		{KindWrite, Application, false, false, Application},
		{KindBoot, Bootloader, false, true, Application},
		{KindBoot, Off, false, false, Application},
		{KindBoot, Off, true, true, Application}, // a boot sequence drives the lines itself
		{KindReset, Off, false, true, Application},
		{KindBootSlot, Bootloader, false, true, Application},
		{KindBootSlot, Application, true, false, Application},
		{KindExpect, Application, false, true, Application},
		{KindExpect, Bootloader, false, false, Bootloader},
		{KindSend, Off, false, false, Off},
		{KindWait, Off, false, true, Off},
		{KindWait, Bootloader, false, true, Bootloader},
	} {
		sp, ok := Lookup(c.kind)
		if !ok {
			t.Fatalf("Lookup(%s) found nothing", c.kind)
		}
		if got := sp.RunsIn(c.from, c.bootSeq); got != c.runs {
			t.Errorf("%s.RunsIn(%s, bootSeq %v) = %v, want %v", c.kind, c.from, c.bootSeq, got, c.runs)
		}
		if got := sp.After(c.from); got != c.after {
			t.Errorf("%s.After(%s) = %s, want %s", c.kind, c.from, got, c.after)
		}
	}
}

func TestTable(t *testing.T) {
	seen := map[Kind]bool{}
	for _, sp := range Table {
		if seen[sp.Kind] {
			t.Errorf("step kind %s is in the table twice", sp.Kind)
		}
		seen[sp.Kind] = true
		for _, r := range sp.Required {
			if !slices.Contains(sp.Params, r) {
				t.Errorf("step %s requires %s, which it does not take", sp.Kind, r)
			}
		}
		if sp.Makes != "" {
			if _, ok := Transitions[sp.Makes]; !ok {
				t.Errorf("step %s makes transition %q, which the state machine does not have", sp.Kind, sp.Makes)
			}
		}
		if sp.Check && !slices.Equal(sp.Needs, []State{Application}) {
			t.Errorf("step %s may be a check but needs %v, not the application", sp.Kind, sp.Needs)
		}
	}
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{"version": "version\r", "a\r": "a\r", "b\n": "b\n", "": ""} {
		if got := (Step{Kind: KindSend, Send: in}).Line(); got != want {
			t.Errorf("Step{Send: %q}.Line() = %q, want %q", in, got, want)
		}
	}
}
