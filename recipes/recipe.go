package recipes

import (
	"fmt"
	"regexp"
	"time"

	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/internal/yamlpos"
	"github.com/unbrick/unbrick/step"
)

// Pos is a place in a recipe file (the position type of every YAML file
// the station reads).
type Pos = yamlpos.Pos

// Error is a problem in a recipe file: where, what, and what to do about it
// (the error type of every YAML file the station reads).
type Error = yamlpos.Error

// Status says whether a recipe may run on production slots.
type Status string

// Statuses.
const (
	Draft    Status = "draft"    // runs only on staging slots
	Released Status = "released" // runs anywhere
)

// Protocols a recipe can name.
var Protocols = []string{"stm32", "esprom", "avr", "uboot"}

// Recipe is a parsed recipe file.
type Recipe struct {
	File   string // the path it was read from
	SHA256 string // of the file's bytes: every record names the exact recipe text

	Name     string
	Version  int
	Status   Status
	Protocol string // one of Protocols

	Match   Match
	Serial  Serial
	Console int // the application console's baud rate; 0: as Serial.Baud

	Flash     Flash
	Protected []Region

	Entry []Action // into the ROM bootloader
	Boot  []Action // start the application (optional)

	Images     []*ImageSpec // in file order
	Strategies []Strategy
	Diagnose   []Diagnosis
	Validate   Validation

	// Options for the protocol driver, as text; the driver declares which
	// it takes and checks them (jobs.CheckOptions).
	Options      map[string]string
	OptionKeys   map[string]Pos // where each option's name is
	OptionValues map[string]Pos // where each option's value is

	Pos Pos // of the document
}

// Released reports whether the recipe may run outside staging slots.
func (r *Recipe) Released() bool { return r.Status == Released }

// Image returns the image spec named name, or nil.
func (r *Recipe) Image(name string) *ImageSpec {
	for _, im := range r.Images {
		if im.Name == name {
			return im
		}
	}
	return nil
}

// Match says which units a recipe is for.
type Match struct {
	Chip      uint32   // the chip id the bootloader reports; 0: any
	Revisions []string // hardware revisions; empty: any
	Model     string
	Pos       Pos
}

// Serial is how the bench talks to the unit's bootloader.
type Serial struct {
	Baud   int
	Parity string // none, even or odd
	Flow   string // none or rtscts
	Pos    Pos
	// FlowPos is where flow is written; the zero Pos when it is not.
	FlowPos Pos
}

// Flash is the part's flash (or, for U-Boot, its storage) as the recipe
// knows it.
type Flash struct {
	Start, Size uint32
	Page        uint32 // erase page size, for erase by pages; 0: unknown
	Pos         Pos
}

// End returns the first address after the flash.
func (f Flash) End() uint64 { return uint64(f.Start) + uint64(f.Size) }

// Region is a named address range, protected from every step.
type Region struct {
	Name        string
	Start, Size uint32
	Pos         Pos
}

// End returns the first address after the region.
func (r Region) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

func (r Region) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("0x%08X (empty)", r.Start)
	}
	return fmt.Sprintf("0x%08X-0x%08X", r.Start, r.End()-1)
}

func overlaps(aStart uint32, aEnd uint64, bStart uint32, bEnd uint64) bool {
	return uint64(aStart) < bEnd && uint64(bStart) < aEnd
}

// ActionKind is what an entry or boot action does.
type ActionKind string

// Action kinds.
const (
	ActSet   ActionKind = "set"   // line: assert or release a line
	ActWait  ActionKind = "wait"  // wait: a time or a window "50ms..80ms"
	ActPulse ActionKind = "pulse" // pulse: assert a line for a time, then release it
	ActModem ActionKind = "modem" // modem: an adapter DTR/RTS sequence (classic, unix-tight)
)

// Line roles an action can name.
var Lines = []string{"power", "boot", "reset", "aux"}

// Action is one action of an entry or boot sequence.
type Action struct {
	Kind     ActionKind
	Line     string // one of Lines
	Asserted bool
	Wait     time.Duration // wait, pulse: at least
	Max      time.Duration // wait: at most (0: no upper end)
	Modem    string
	Pos      Pos
}

// ImageSpec is an image as the recipe names it.
type ImageSpec struct {
	Name      string
	File      string // as written, relative to the recipe
	Path      string // resolved
	Format    firmware.Format
	SHA256    string // of the bytes written (the flattened image)
	Signature string // the .minisig file, resolved; empty: unsigned
	SigFile   string // the .minisig file as written
	Version   string
	Purpose   firmware.Purpose
	Revisions []string
	Addr      uint32 // where a raw image goes (a storage offset for U-Boot)
	HasAddr   bool
	Fill      byte // gap fill when flattening HEX and ELF images

	Pos, FilePos, SHAPos, SigPos, AddrPos Pos
}

// StepKind is what a strategy step does: the shared vocabulary of package
// step.
type StepKind = step.Kind

// StepKinds lists every step kind in the order the documentation gives.
var StepKinds = step.Kinds()

// Step is one step of a strategy.
type Step = step.Step

// Strategy is one way to recover a unit.
type Strategy struct {
	Name  string
	Steps []Step
	Pos   Pos
}

// Diagnosis names a failure from console text.
type Diagnosis struct {
	Pattern *regexp.Regexp
	Class   string
	Hint    string
	Pos     Pos
}

// Validation is what must hold once the unit runs again.
type Validation struct {
	Version *regexp.Regexp // its first group captures the version the unit prints
	Image   string         // whose version is expected when a strategy wrote none
	Within  time.Duration
	Checks  []Step // send and expect steps
	Pos     Pos
}
