// Package step is the step vocabulary that recipes and jobs share: the
// kinds of strategy step, the table that says what each takes, which unit
// state it needs and which it leaves, and the Step a recipe's strategy is
// made of and the runner executes. It is a leaf: it imports nothing of the
// station but the YAML position type.
//
// A unit in a slot is always in one of three states (off, bootloader,
// application, see State); a step kind names the states it may run in and
// the transition it makes. A recipe whose step needs a state its strategy
// has not reached is an error when the recipe is loaded; the runner refuses
// the same step at run time with the same words.
//
// Adding a step kind is one row in Table (its name, value, keys, states and
// transition) and its code in jobs/steps.go.
package step

import (
	"fmt"
	"regexp"
	"time"

	"github.com/unbrick/unbrick/internal/yamlpos"
)

// Pos is a place in a recipe file.
type Pos = yamlpos.Pos

// Region is an address range [Start, Start+Size).
type Region struct {
	Start uint32
	Size  uint32
}

// End returns the first address after r.
func (r Region) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

// Overlaps reports whether r and o share an address.
func (r Region) Overlaps(o Region) bool {
	return uint64(r.Start) < o.End() && uint64(o.Start) < r.End()
}

// Within reports whether r lies inside o.
func (r Region) Within(o Region) bool { return r.Start >= o.Start && r.End() <= o.End() }

func (r Region) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("0x%08X (empty)", r.Start)
	}
	return fmt.Sprintf("0x%08X-0x%08X", r.Start, r.End()-1)
}

// State is where a unit is, as a job drives it.
type State string

// Unit states.
const (
	Off         State = "off"         // not powered by the job yet, or powered off
	Bootloader  State = "bootloader"  // in its ROM bootloader, connected and identified
	Application State = "application" // running its application; its console is read
)

// What says what a state means for a person reading an error.
func (s State) What() string {
	switch s {
	case Bootloader:
		return "the unit in its bootloader"
	case Application:
		return "the unit's application running"
	}
	return "the unit powered off"
}

// Transition is a named change of a unit's state.
type Transition string

// Transitions. Each says the states it starts from and the one it ends in
// (see Transitions).
const (
	Enter    Transition = "enter"              // entry sequence, sync, identify: -> bootloader
	BootApp  Transition = "boot"               // bootloader's start command or the boot sequence: -> application
	ResetApp Transition = "reset"              // power-cycle with the strap released: -> application
	BootSlot Transition = "boot fallback slot" // A/B bootloader boots a named slot: bootloader -> application
	PowerOff Transition = "power off"          // any -> off
)

// Move is one transition's rule: the states it may start from (nil: any)
// and the state it ends in.
type Move struct {
	From []State
	To   State
}

// Transitions is the unit's state machine.
var Transitions = map[Transition]Move{
	Enter:    {To: Bootloader},
	BootApp:  {From: []State{Bootloader}, To: Application}, // a recipe's boot sequence lifts From (see Allowed)
	ResetApp: {To: Application},
	BootSlot: {From: []State{Bootloader}, To: Application},
	PowerOff: {To: Off},
}

// Allowed reports whether transition t may start from state s. A boot with
// the recipe's own boot sequence (bootSeq) starts from any state: the
// sequence drives the lines itself.
func Allowed(t Transition, s State, bootSeq bool) bool {
	m, ok := Transitions[t]
	if !ok {
		return false
	}
	if len(m.From) == 0 || (t == BootApp && bootSeq) {
		return true
	}
	for _, f := range m.From {
		if f == s {
			return true
		}
	}
	return false
}

// Kind is what a strategy step does.
type Kind string

// Step kinds.
const (
	KindEnter     Kind = "enter"     // entry sequence + sync + identify
	KindErase     Kind = "erase"     // a region, pages, or all
	KindWrite     Kind = "write"     // an image
	KindVerify    Kind = "verify"    // an image
	KindBackup    Kind = "backup"    // read a region and keep it in the record
	KindRestore   Kind = "restore"   // write a backed-up region back
	KindProvision Kind = "provision" // burn a value from a number pool
	KindBoot      Kind = "boot"      // start the application
	KindReset     Kind = "reset"     // power-cycle the unit into its application
	KindExpect    Kind = "expect"    // console text within a time
	KindSend      Kind = "send"      // send a line, expect an answer
	KindBootSlot  Kind = "boot_slot" // A/B: boot the given slot
	KindWait      Kind = "wait"      // wait
)

// Value says what a step's value (the text after "kind:") is and which
// field of Step it fills.
type Value int

// Step values.
const (
	NoValue   Value = iota // - enter
	ImageName              // Image: write: app
	Name                   // Name: backup: nvs
	PoolName               // Pool: provision: serials
	SlotName               // Slot: boot_slot: b
	Duration               // Within: wait: 2s
	Pattern                // Expect: expect: 'ready'
	Text                   // Send: send: version
	EraseWhat              // All, or nothing and a region in its keys: erase: all
)

// Param keys a step can take besides its value. Each means one thing in
// every kind that takes it: start and size fill Region, pages fills
// FirstPage and Pages, address fills Addr, within fills Within, expect
// fills Expect.
const (
	ParamStart   = "start"
	ParamSize    = "size"
	ParamPages   = "pages"
	ParamAddress = "address"
	ParamWithin  = "within"
	ParamExpect  = "expect"
)

// Spec is one row of the step table.
type Spec struct {
	Kind     Kind
	Value    Value
	Params   []string // keys it takes besides its value
	Required []string // of Params, those it must have
	// Needs are the states it may run in; empty: any.
	Needs []State
	// Makes is the transition it makes, if any.
	Makes Transition
	// Retry: it talks to the bootloader, and a try that failed in a way
	// retrying mends is repeated after entering the bootloader again.
	Retry bool
	// Check: it may be a validation check.
	Check bool
}

var inBootloader = []State{Bootloader}
var inApp = []State{Application}

// Table is every step kind, in the order the documentation gives.
var Table = []Spec{
	{Kind: KindEnter, Makes: Enter, Retry: true},
	{Kind: KindErase, Value: EraseWhat, Params: []string{ParamStart, ParamSize, ParamPages}, Needs: inBootloader, Retry: true},
	{Kind: KindWrite, Value: ImageName, Needs: inBootloader, Retry: true},
	{Kind: KindVerify, Value: ImageName, Needs: inBootloader, Retry: true},
	{Kind: KindBackup, Value: Name, Params: []string{ParamStart, ParamSize}, Required: []string{ParamStart, ParamSize}, Needs: inBootloader, Retry: true},
	{Kind: KindRestore, Value: Name, Needs: inBootloader, Retry: true},
	{Kind: KindProvision, Value: PoolName, Params: []string{ParamAddress}, Required: []string{ParamAddress}, Needs: inBootloader, Retry: true},
	{Kind: KindBoot, Makes: BootApp},
	{Kind: KindReset, Makes: ResetApp},
	{Kind: KindExpect, Value: Pattern, Params: []string{ParamWithin}, Needs: inApp, Check: true},
	{Kind: KindSend, Value: Text, Params: []string{ParamExpect, ParamWithin}, Required: []string{ParamExpect}, Needs: inApp, Check: true},
	{Kind: KindBootSlot, Value: SlotName, Needs: inBootloader, Makes: BootSlot},
	{Kind: KindWait, Value: Duration},
}

// Lookup returns the table's row for k.
func Lookup(k Kind) (Spec, bool) {
	for _, s := range Table {
		if s.Kind == k {
			return s, true
		}
	}
	return Spec{}, false
}

// Kinds lists every step kind in table order.
func Kinds() []Kind {
	out := make([]Kind, len(Table))
	for i, s := range Table {
		out[i] = s.Kind
	}
	return out
}

// RunsIn reports whether a step of this kind may run with the unit in
// state s. A boot step runs anywhere when the recipe has a boot sequence.
func (sp Spec) RunsIn(s State, bootSeq bool) bool {
	if sp.Makes != "" && !Allowed(sp.Makes, s, bootSeq) {
		return false
	}
	if len(sp.Needs) == 0 {
		return true
	}
	for _, n := range sp.Needs {
		if n == s {
			return true
		}
	}
	return false
}

// After returns the unit's state after a step of this kind ran from s.
func (sp Spec) After(s State) State {
	if sp.Makes == "" {
		return s
	}
	return Transitions[sp.Makes].To
}

// Needing says, for an error, what a step of this kind needs.
func (sp Spec) Needing(bootSeq bool) string {
	if sp.Makes == BootApp && !bootSeq {
		return "the unit in its bootloader (the recipe has no boot sequence)"
	}
	from := sp.Needs
	if sp.Makes != "" && len(Transitions[sp.Makes].From) > 0 {
		from = Transitions[sp.Makes].From
	}
	if len(from) == 1 {
		return from[0].What()
	}
	return "nothing"
}

// Step is one step of a strategy (or a validation check).
type Step struct {
	Kind      Kind
	Image     string         // write, verify
	All       bool           // erase all
	Region    Region         // erase, backup (erase by pages: set from the pages when the recipe is checked)
	FirstPage uint32         // erase by pages
	Pages     uint32         // erase by pages: how many; 0: not by pages
	Name      string         // backup, restore: the backup's name
	Pool      string         // provision
	Addr      uint32         // provision
	Send      string         // send: the line as written
	Expect    *regexp.Regexp // expect, send
	Within    time.Duration  // expect, send, wait
	Slot      string         // boot_slot
	Pos       Pos            // where the recipe says it
}

// Spec returns the table's row for the step's kind (the zero Spec for an
// unknown kind).
func (s Step) Spec() Spec {
	sp, _ := Lookup(s.Kind)
	return sp
}

// Label names the step for the operator and the record.
func (s Step) Label() string {
	switch s.Kind {
	case KindWrite, KindVerify:
		return string(s.Kind) + " " + s.Image
	case KindErase:
		if s.All {
			return "erase all"
		}
		return "erase " + s.Region.String()
	case KindBackup, KindRestore:
		return string(s.Kind) + " " + s.Name
	case KindProvision:
		return "provision " + s.Pool
	case KindExpect:
		if s.Expect == nil {
			return "expect"
		}
		return "expect " + s.Expect.String()
	case KindSend:
		return fmt.Sprintf("send %q", s.Send)
	case KindBootSlot:
		return "boot slot " + s.Slot
	}
	return string(s.Kind)
}

// Line returns the text a send step puts on the console: its text with a
// carriage return, as a person ends a command line with Enter, unless it
// already ends in one or a newline.
func (s Step) Line() string {
	if s.Send == "" || s.Send[len(s.Send)-1] == '\r' || s.Send[len(s.Send)-1] == '\n' {
		return s.Send
	}
	return s.Send + "\r"
}

// Fix says what to add to a recipe whose step of this kind comes before
// the state it needs.
func (sp Spec) Fix() string {
	switch {
	case sp.Makes == BootApp:
		return "add enter before it, or a boot: sequence to the recipe"
	case len(sp.Needs) == 1 && sp.Needs[0] == Application:
		return "add boot, reset or boot_slot before it"
	}
	return "add enter before it"
}
