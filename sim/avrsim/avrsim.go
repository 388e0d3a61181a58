// Package avrsim models an ATmega328P (or ATmega2560) running optiboot, the
// Arduino Uno's bootloader, for the virtual bench: a sim.Model that speaks
// STK500v1 byte for byte as optiboot.c does
// (https://github.com/Optiboot/optiboot/blob/master/optiboot/bootloaders/optiboot/optiboot.c),
// over flash that behaves like the part's (ATmega328P datasheet, section
// "Boot Loader Support – Read-While-Write Self-Programming",
// https://ww1.microchip.com/downloads/en/DeviceDoc/Atmel-7810-Automotive-Microcontrollers-ATmega328P_Datasheet.pdf).
//
// What it models:
//
//   - Reset: after every reset the part waits out its start-up time
//     (StartupDelay, 66 ms with the Uno's fuses) with its UART off; bytes
//     sent meanwhile are lost.
//   - Boot: optiboot reads the reset flags (MCUSR). After a power-on reset it
//     starts the application at once; only an external reset (EXTRF alone,
//     no watchdog flag) enters the bootloader, which then waits for STK500
//     traffic with its watchdog: every byte received restarts the window
//     (about 1 s, Options.Window), and when it runs out the watchdog resets
//     the unit into the application. LEAVE_PROGMODE shortens the watchdog to
//     16 ms, so the application starts right after the answer. A command
//     whose terminator is not 0x20 makes optiboot stop answering and let
//     the watchdog reset it into the application 16 ms later.
//   - Start-up flashes: with Options.LEDFlashes (optiboot's
//     LED_START_FLASHES, 3 in Arduino's build) optiboot toggles its LED for
//     1/16 s 2n times before it reads the UART; the USART meanwhile holds
//     the first three bytes it receives and loses the rest (datasheet,
//     "Receiver Error Flags").
//   - Framing errors: a byte received at the wrong rate does not restart
//     the watchdog (optiboot.c, getch).
//   - Versions: Options.Major below 5 runs optiboot 4.x (Arduino 1.8's and
//     Debian's optiboot.c): PROG_PAGE ignores the memory type, so 'E' data
//     goes to flash, and programs the whole page from its RAM buffer.
//   - Flash: 32 KiB in 128-byte pages (256 KiB in 256-byte pages on the
//     2560). PROG_PAGE erases the page holding the loaded address, then
//     writes the page buffer, each step taking PageEraseTime and
//     PageWriteTime of busy time, so a write always lands whatever was there.
//     Optiboot's own section at the top (0x7E00, 512 bytes; 1 KiB on the
//     2560) is protected by the lock bits Arduino sets (0x0F: SPM may not
//     write the boot section), so the chip silently ignores writes there:
//     optiboot answers STK_OK and the old contents stay, which only a
//     read-back shows.
//   - Addresses: LOAD_ADDRESS takes a word address; on the 2560 bit 15 of
//     it and the UNIVERSAL Load Extended Address command (4D 00 ext 00) set
//     RAMPZ, which READ_PAGE's ELPM Z+ advances as it reads, as on silicon.
//   - EEPROM (1 KiB; 4 KiB on the 2560) only with Options.EEPROM, like
//     optiboot's SUPPORT_EEPROM build; without it, PROG_PAGE 'E' answers
//     STK_INSYNC and hangs until the watchdog resets, and READ_PAGE 'E'
//     returns flash bytes, as the stock build does.
//   - The application: an image built by AppImage (a vector table of JMP
//     instructions, then the sim app descriptor at DescOffset) runs the sim
//     demo console at 115200 baud; erased or corrupt flash prints an error
//     line and, like a blank chip running into optiboot at the top of flash,
//     re-enters optiboot's reset-flag check without a new reset.
//
// An ATmega has no serial number its bootloader can read: Options.ID is
// what the application prints, standing in for a barcode label.
//
// By default the ATmega2560 model is optiboot on a 2560, as third-party
// cores (MegaCore) ship it. A stock Arduino Mega 2560 runs a different
// bootloader, the STK500v2 "wiring" one (avrdude -c wiring, an 8 KiB boot
// section): Options.Wiring models that one (wiring.go).
//
// FIDELITY.md lists each behaviour with its source and its test; the
// differential tests hold the model against real optiboot on simavr.
package avrsim

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
)

// Timings of the modelled part (ATmega328P datasheet, "Typical Wait Delay
// Before Writing": tWD_FLASH 3.7 to 4.5 ms for a page erase or write,
// tWD_EEPROM 3.3 ms a byte).
const (
	PageEraseTime  = 4 * time.Millisecond
	PageWriteTime  = 4 * time.Millisecond
	EEPROMByteTime = 3300 * time.Microsecond
	DefaultWindow  = time.Second // optiboot's default watchdog period (WDTTIME 1)
	watchdogShort  = 16 * time.Millisecond
	// StartupDelay is how long the part stays in reset after the reset
	// source goes away: with the Uno's low fuse 0xFF (crystal, slowly
	// rising power) 16K clock cycles (1 ms at 16 MHz) plus 65 ms. Bytes
	// that arrive meanwhile are lost: the UART is not running.
	StartupDelay = 66 * time.Millisecond
)

// MCUSR reset flags.
const (
	porf  = 1 << 0
	extrf = 1 << 1
	wdrf  = 1 << 3
)

// model describes a part the simulator can run.
type model struct {
	vectors int // interrupt vectors (4-byte JMPs)
	fuses   Fuses
}

var models = map[string]model{
	"ATmega328P": {vectors: 26, fuses: Fuses{Low: 0xFF, High: 0xDE, Ext: 0xFD, Lock: 0xCF}},
	"ATmega2560": {vectors: 57, fuses: Fuses{Low: 0xFF, High: 0xDE, Ext: 0xFD, Lock: 0xCF}},
}

// Fuses are the part's fuse and lock bytes as an ISP programmer reads them
// (optiboot cannot read them: it answers every UNIVERSAL command with 0).
// High 0xDE selects the smallest boot section with the reset vector in it;
// Lock 0xCF is Arduino's 0x0F with the unused bits read as one: SPM may not
// write the boot section.
type Fuses struct {
	Low, High, Ext, Lock byte
}

// Options set how a simulated unit is built.
type Options struct {
	// Board is the board the unit really is; an application built for
	// another board boot-loops (see sim.RunApp).
	Board string
	// ID is the identity the application prints: the ATmega has no serial
	// number, so this stands for the unit's barcode label.
	ID string
	// Window is how long optiboot waits for a byte before its watchdog
	// starts the application; every byte received without a framing error
	// restarts it. 0 means 1 s (optiboot.c: watchdogConfig(WATCHDOG_1S));
	// older builds use 500 ms (the comment above that call in Arduino's
	// optiboot.c still says "trigger after 500ms").
	// A negative Window makes optiboot wait for ever: a sim convenience for
	// driving the model with tools that cannot reset it (avrdude on a
	// pseudo-terminal has no DTR to pulse).
	Window time.Duration
	// LEDFlashes is optiboot's LED_START_FLASHES: after each reset into the
	// bootloader it flashes the LED that many times (1/8 s each) before it
	// reads the UART, and bytes sent meanwhile are held as the USART holds
	// them (the first three) or lost. Arduino's stock Uno build uses 3:
	// 375 ms of deafness (optiboot.c, flash_led). 0 means none.
	LEDFlashes int
	// Wiring runs the Arduino Mega 2560's own bootloader instead of
	// optiboot: stk500boot.c, STK500v2 (avrdude -c wiring), in an 8 KiB boot
	// section (see wiring.go). ATmega2560 only.
	Wiring bool
	// EEPROM builds optiboot with SUPPORT_EEPROM.
	EEPROM bool
	// Major and Minor are the version optiboot reports; 0.0 means 8.3.
	Major, Minor byte
	// Baud is optiboot's line rate; 0 means 115200.
	Baud int
	// Image is the application in flash at address 0 when the unit arrives.
	Image []byte
	// Reboot is the period of a bricked unit's boot loop; 0 means 1 s.
	Reboot time.Duration
	// Startup is the delay from a reset to the first instruction; 0 means
	// StartupDelay, negative none.
	Startup time.Duration
}

// Stats counts what the model did.
type Stats struct {
	BootloaderRuns int // runs that entered optiboot's command loop
	AppRuns        int // runs that started the application
	Watchdog       int // watchdog resets optiboot caused
	BadTerminators int // commands whose terminator was not 0x20
	PagesWritten   int // flash pages erased and written
	PagesIgnored   int // PROG_PAGE into the locked boot section
	Commands       int // STK500 commands handled
}

// Model is one simulated ATmega with optiboot. It is safe for concurrent use.
type Model struct {
	part   avr.Part
	info   model
	opts   Options
	flash  *sim.Flash
	window time.Duration

	mu     sync.Mutex
	eeprom []byte
	mcusr  byte
	wdt    bool // the next software reset is a watchdog reset
	stuck  map[uint32]stuckBits
	stats  Stats
}

var _ sim.Model = (*Model)(nil)

type stuckBits struct{ mask, value byte }

// New returns a unit of the named part ("atmega328p" or "atmega2560",
// without regard to case; avrdude's "m328p" and "m2560" work too), with
// optiboot in its boot section and opts.Image, if any, as its application.
func New(part string, opts Options) (*Model, error) {
	p, info, err := lookup(part)
	if err != nil {
		return nil, err
	}
	if opts.Major == 0 && opts.Minor == 0 {
		opts.Major, opts.Minor = 8, 3
	}
	if opts.Baud == 0 {
		opts.Baud = 115200
	}
	if opts.Wiring {
		if p.Name != "ATmega2560" {
			return nil, fmt.Errorf("avrsim: the wiring (STK500v2) bootloader is the Mega 2560's; %s runs optiboot", p.Name)
		}
		p = avr.WiringPart()
		info.fuses.High = 0xD8 // BOOTSZ=00: the 4 K-word boot section
	}
	m := &Model{
		part:   p,
		info:   info,
		opts:   opts,
		flash:  sim.NewFlash(0, sim.Uniform(p.FlashSize/p.PageSize, uint32(p.PageSize))),
		window: opts.Window,
		eeprom: make([]byte, p.EEPROMSize),
	}
	if m.window == 0 {
		m.window = DefaultWindow
	}
	for i := range m.eeprom {
		m.eeprom[i] = 0xFF
	}
	if err := m.flash.Load(uint32(p.BootStart()), bootImage(p, opts.Major, opts.Minor)); err != nil {
		return nil, err
	}
	if opts.Image != nil {
		if err := m.LoadApp(opts.Image); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func lookup(part string) (avr.Part, model, error) {
	p, ok := avr.LookupName(part)
	if ok {
		if info, ok := models[p.Name]; ok {
			return p, info, nil
		}
	}
	var names []string
	for n := range models {
		names = append(names, strings.ToLower(n))
	}
	sort.Strings(names)
	return avr.Part{}, model{}, fmt.Errorf("avrsim: no model of part %q; choose one of %v", part, names)
}

// bootImage returns stand-in bytes for optiboot's code in the boot section,
// ending with its version word (minor, major) as the real one does.
func bootImage(p avr.Part, major, minor byte) []byte {
	b := make([]byte, p.BootSize)
	r := rand.New(rand.NewPCG(uint64(crc32.ChecksumIEEE([]byte("optiboot/"+p.Name))), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[len(b)-2], b[len(b)-1] = minor, major
	return b
}

// Part returns the modelled part.
func (m *Model) Part() avr.Part { return m.part }

// Fuses returns the fuse and lock bytes.
func (m *Model) Fuses() Fuses { return m.info.fuses }

// Flash returns the unit's flash, to inspect or to damage.
func (m *Model) Flash() *sim.Flash { return m.flash }

// EEPROM returns a copy of the EEPROM.
func (m *Model) EEPROM() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.eeprom...)
}

// Stats returns what the model did so far.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// LoadApp puts an application image at address 0 as an ISP programmer
// would, whatever was there.
func (m *Model) LoadApp(img []byte) error {
	if len(img) > m.part.BootStart() {
		return fmt.Errorf("avrsim: image of %d bytes does not fit below optiboot at 0x%04X", len(img), m.part.BootStart())
	}
	return m.flash.Load(0, img)
}

// StickBit makes one flash cell faulty: from now on, every page write
// leaves bit (0 to 7) of the byte at addr at level high, whatever was
// written. It models a worn cell, for proving that a read-back catches it.
func (m *Model) StickBit(addr uint32, bit uint, high bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stuck == nil {
		m.stuck = map[uint32]stuckBits{}
	}
	s := m.stuck[addr]
	s.mask |= 1 << bit
	if high {
		s.value |= 1 << bit
	} else {
		s.value &^= 1 << bit
	}
	m.stuck[addr] = s
}

// Run runs the unit from a reset: optiboot's reset-flag check, then the
// bootloader or the application.
func (m *Model) Run(s *sim.Session) {
	m.mu.Lock()
	switch s.Cause {
	case sim.PowerOn:
		m.mcusr = porf
	case sim.External:
		m.mcusr |= extrf
	case sim.Software:
		// A watchdog reset sets WDRF. An application that crashes into
		// optiboot at the top of flash (a blank chip does) is no reset.
		if m.wdt {
			m.mcusr |= wdrf
		}
	}
	reset := s.Cause != sim.Software || m.wdt
	m.wdt = false
	ch := m.mcusr
	// optiboot runs the bootloader only for an external reset without the
	// watchdog flag (WDRF with EXTRF is its own timeout), or when the
	// application jumps to it with MCUSR cleared.
	app := ch != 0 && ch&(wdrf|extrf) != extrf
	if app && ch&extrf != 0 {
		m.mcusr &^= wdrf
	}
	if m.opts.Wiring {
		// stk500boot.c (_FIX_ISSUE_181_): MCUSR is read and cleared; only a
		// watchdog reset goes straight to the application.
		app = ch&wdrf != 0
		m.mcusr = 0
	}
	if app {
		m.stats.AppRuns++
	} else {
		m.stats.BootloaderRuns++
	}
	m.mu.Unlock()
	if reset {
		if d := m.opts.Startup; d >= 0 {
			if d == 0 {
				d = StartupDelay
			}
			if s.Wait(d) != nil {
				return
			}
		}
		dropInput(s)
	}
	if app {
		m.runApp(s)
		return
	}
	if m.opts.Wiring {
		m.runWiring(s)
		return
	}
	m.runBootloader(s)
}

// dropInput discards what the unit received but did not read: a reset
// clears the UART.
func dropInput(s *sim.Session) {
	var drop [64]byte
	for {
		if n, _ := s.ReadTimeout(drop[:], 0); n == 0 {
			return
		}
	}
}

// watchdogReset resets the unit through its watchdog.
func (m *Model) watchdogReset(s *sim.Session) {
	m.mu.Lock()
	m.wdt = true
	m.stats.Watchdog++
	m.mu.Unlock()
	s.Reset()
}

var errWatchdog = errors.New("avrsim: watchdog expired")
