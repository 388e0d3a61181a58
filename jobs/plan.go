package jobs

import (
	"fmt"
	"regexp"
	"time"

	"github.com/unbrick/unbrick/gpio"
)

// Plan is a recipe ready to run: what the runner executes for one unit.
// Recipes compile into plans (see FromRecipe); tests build them directly.
type Plan struct {
	Recipe   string
	Version  int
	SHA256   string // the recipe file's content hash
	Protocol string // "stm32", "esprom", "avr", "uboot"
	Released bool   // a draft runs only on a staging slot

	Chip      uint32   // the chip id the bootloader must report; 0 accepts any
	Revisions []string // hardware revisions the recipe is for; empty accepts any
	Model     string

	Port        Mode
	ConsoleBaud int

	Flash     Region
	Protected []NamedRegion

	Images map[string]*Image

	Entry []Action // into the ROM bootloader
	Boot  []Action // start the application

	Strategies []Strategy
	Diagnose   []Diagnosis
	Validate   Validation

	// Options for the protocol driver (U-Boot's load address, storage...).
	Options map[string]string
}

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

// NamedRegion is a protected region.
type NamedRegion struct {
	Name string
	Region
}

// Image is a firmware image a plan writes, already loaded and checked (or
// with the reason it could not be: the runner refuses the job before
// touching the unit).
type Image struct {
	Name      string
	Version   string
	Addr      uint32
	Data      []byte
	SHA256    string   // of Data
	Revisions []string // hardware revisions it is built for; empty: any the recipe accepts
	Signer    string
	// Refusal, if set, is why the image must not be written (hash mismatch,
	// bad signature...). The job is refused before any line is toggled.
	Refusal *Failure
}

// Region returns the range the image covers.
func (im *Image) Region() Region { return Region{im.Addr, uint32(len(im.Data))} }

// ActionKind says what an entry or boot action does.
type ActionKind int

// Action kinds.
const (
	ActSet   ActionKind = iota // assert or release a line
	ActWait                    // wait
	ActPulse                   // assert a line, wait, release it
	ActModem                   // an adapter DTR/RTS reset sequence ("classic", "unix-tight")
)

// Action is one step of an entry or boot sequence.
type Action struct {
	Kind  ActionKind
	Role  gpio.Role
	On    bool
	Wait  time.Duration // for ActWait and ActPulse
	Max   time.Duration // the upper end of a timing window (0: none)
	Modem string
	Pos   string // where the recipe says it (file:line:col)
}

// StepKind says what a strategy step does.
type StepKind string

// Step kinds.
const (
	StepEnter     StepKind = "enter"     // entry sequence + sync + identify
	StepErase     StepKind = "erase"     // a region, or all
	StepWrite     StepKind = "write"     // an image
	StepVerify    StepKind = "verify"    // an image
	StepBackup    StepKind = "backup"    // read a region and keep it
	StepRestore   StepKind = "restore"   // write a backed-up region back
	StepProvision StepKind = "provision" // burn a value from a pool
	StepBoot      StepKind = "boot"      // boot sequence: start the application
	StepReset     StepKind = "reset"     // power-cycle or reset the unit into its application
	StepExpect    StepKind = "expect"    // console text within a time
	StepSend      StepKind = "send"      // send text, expect an answer
	StepBootSlot  StepKind = "boot_slot" // A/B: boot the given slot
	StepWait      StepKind = "wait"      // wait
)

// Step is one step of a strategy.
type Step struct {
	Kind   StepKind
	Image  string         // write, verify
	Region Region         // erase, backup
	All    bool           // erase all
	Name   string         // backup, restore: the backup's name
	Pool   string         // provision
	Format string         // provision: how the value is laid out (see provision)
	Addr   uint32         // provision
	Send   string         // send
	Expect *regexp.Regexp // expect, send
	Within time.Duration  // expect, send, wait
	Slot   string         // boot_slot
	Pos    string         // file:line:col in the recipe
}

// Label names the step for the operator and the record.
func (s Step) Label() string {
	switch s.Kind {
	case StepWrite, StepVerify:
		return string(s.Kind) + " " + s.Image
	case StepErase:
		if s.All {
			return "erase all"
		}
		return "erase " + s.Region.String()
	case StepBackup, StepRestore:
		return string(s.Kind) + " " + s.Name
	case StepProvision:
		return "provision " + s.Pool
	case StepExpect:
		return "expect " + s.Expect.String()
	case StepSend:
		return fmt.Sprintf("send %q", s.Send)
	case StepBootSlot:
		return "boot slot " + s.Slot
	}
	return string(s.Kind)
}

// Strategy is one way to recover a unit: steps tried in order.
type Strategy struct {
	Name  string
	Steps []Step
}

// Diagnosis names a failure from console text.
type Diagnosis struct {
	Pattern *regexp.Regexp
	Class   string
	Hint    string
}

// Validation is what must hold after the unit boots.
type Validation struct {
	// Version captures the version the unit prints; it must equal the
	// version of the image written (or, when a strategy wrote none, of
	// Image).
	Version *regexp.Regexp
	Image   string // the image whose version is expected when none was written
	Within  time.Duration
	Checks  []Step // send/expect checks
}
