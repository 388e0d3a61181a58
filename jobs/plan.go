package jobs

import (
	"regexp"
	"time"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/step"
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
	Options Options
}

// Region is an address range [Start, Start+Size).
type Region = step.Region

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
func (im *Image) Region() Region { return Region{Start: im.Addr, Size: uint32(len(im.Data))} }

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

// StepKind says what a strategy step does: the vocabulary recipes and jobs
// share (package step; step.Table says what each kind takes and needs).
type StepKind = step.Kind

// Step is one step of a strategy, as the recipe says it.
type Step = step.Step

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
