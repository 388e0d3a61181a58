// Package espsim models an ESP32 or an ESP8266 for the virtual bench: a
// sim.Model whose ROM speaks the serial download protocol that esptool
// uses (https://docs.espressif.com/projects/esptool/en/latest/esp32/advanced-topics/serial-protocol.html)
// byte for byte, over SPI flash that behaves like flash, with the MAC in
// eFuse (ESP32) or OTP (ESP8266) as the ESP32 Technical Reference Manual and
// esptool read it.
//
// What it models:
//
//   - Boot: at each reset the GPIO0 strap (sim.Session.Boot, asserted =
//     GPIO0 low) selects download mode; the ROM prints its boot line
//     ("rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT...)", "waiting for
//     download") at its boot rate, 115200 on the ESP32 and 74880 on the
//     ESP8266 (26 MHz crystal), then follows the host's rate (it autobauds
//     on SYNC). Otherwise it boots the image at BootOffset (0x1000 on the
//     ESP32, 0 on the ESP8266): an ESP image header (magic 0xE9, segments,
//     an entry point in IRAM) whose payload carries the sim app descriptor
//     runs the sim demo console; an erased or bad image prints the ROM's
//     complaint ("invalid header: 0xffffffff", ...) and resets about once a
//     second: the bricked state.
//
//   - The download protocol: SLIP framing, SYNC answered eight times,
//     READ_REG/WRITE_REG, FLASH_BEGIN/DATA/END with the checksum checked
//     (error 07), each block read back after programming (error 08), and
//     every malformed or unknown request answered error 05. The ESP32 ROM
//     sends four status bytes and has SPI_ATTACH, SPI_SET_PARAMS,
//     CHANGE_BAUDRATE, FLASH_DEFL_* (zlib, error 0B on a corrupt stream),
//     SPI_FLASH_MD5 (32 lower-case hex digits) and READ_FLASH_SLOW. The
//     ESP8266 ROM sends two status bytes, has none of those, and erases too
//     much at FLASH_BEGIN (twice the request when it is less than the rest
//     of the first 64 KiB block, else the request plus that rest), the bug
//     esptool works around.
//
//   - Flash: a sim.Flash of 4 KiB sectors at 0. Programming ANDs, so a
//     block written over data that was not erased reads back different and
//     the ROM answers error 08. Erasing (45 ms a sector, 150 ms an aligned
//     64 KiB block), programming (0.7 ms a 256-byte page) and hashing take
//     the typical times of a W25Q32-class chip as busy time.
//
//   - FLASH_END with "run user code" (1) starts the application in the
//     same run, as the ROM jumps into it; with "reboot" (0) the unit resets
//     and the strap decides again.
//
//   - esptool's flasher stub: code sent with MEM_BEGIN/DATA/END and
//     started is taken to be esptool's stub, which the model then plays
//     (see stub.go): OHAI, two status bytes, erase as it writes, raw MD5s,
//     ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE.
//
//   - Registers: READ_REG answers the chip-detect word, the MAC words and
//     UART_CLKDIV (from which esptool guesses the crystal); WRITE_REG to the
//     SPI controller runs a user command, of which RDID (9F) answers a
//     Winbond JEDEC ID with the flash's size, as esptool's flash_id and
//     --flash_size detect need.
//
//   - The ESP32 ROM takes the flash for 2 MiB (ROMFlashSize) until
//     SPI_SET_PARAMS, reaches it only after SPI_ATTACH with the pins its
//     eFuse names (Options.SPIPins), and sets CHANGE_BAUDRATE's divider
//     from a drifting crystal estimate (Options.ROMCrystal).
//
// Fault knobs (SetFaults) garble a received block, make programming fail,
// make the ROM miss its first SYNCs, or make it stop answering; a Timing
// (WorstTiming) sets the flash's datasheet maxima. FIDELITY.md lists every
// behaviour with its source and its test.
package espsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
)

// Timing is how long the modelled SPI flash and ROM take to work.
type Timing struct {
	SectorErase time.Duration // one 4 KiB sector
	BlockErase  time.Duration // one aligned 64 KiB block
	PageProgram time.Duration // one 256-byte page
	MD5PerKiB   time.Duration // reading and hashing 1 KiB
}

// WorstTiming is the same flash at its datasheet's maximum times (Winbond
// W25Q32JV, AC electrical characteristics: tSE 400 ms, tBE2 2 s, tPP
// 3 ms), which a host's timeouts must survive: esptool sizes them at 40 s
// per MB for that reason.
var WorstTiming = Timing{
	SectorErase: 400 * time.Millisecond,
	BlockErase:  2 * time.Second,
	PageProgram: 3 * time.Millisecond,
	MD5PerKiB:   330 * time.Microsecond,
}

// DefaultTiming is a W25Q32-class flash's typical times (datasheet: tSE
// 45 ms, tBE1 150 ms, tPP 0.7 ms) and the ROM's MD5 at about 3 MiB/s.
var DefaultTiming = Timing{
	SectorErase: 45 * time.Millisecond,
	BlockErase:  150 * time.Millisecond,
	PageProgram: 700 * time.Microsecond,
	MD5PerKiB:   330 * time.Microsecond,
}

// EraseTime returns how long the ROM takes to erase n sectors from sector
// first: 64 KiB blocks where they are whole and aligned, sectors elsewhere.
func (t Timing) EraseTime(first, n uint32) time.Duration {
	var d time.Duration
	for s := first; s < first+n; {
		if s%16 == 0 && first+n-s >= 16 {
			d += t.BlockErase
			s += 16
			continue
		}
		d += t.SectorErase
		s++
	}
	return d
}

// ProgramTime returns how long programming n bytes takes.
func (t Timing) ProgramTime(n int) time.Duration {
	return time.Duration((n+255)/256) * t.PageProgram
}

// MD5Time returns how long hashing n bytes of flash takes.
func (t Timing) MD5Time(n uint32) time.Duration {
	return time.Duration(int64(t.MD5PerKiB) * int64(n) / 1024)
}

// ROMFlashSize is the flash size the ESP32 ROM assumes in download mode
// until SPI_SET_PARAMS gives the real one: 2 MiB. Its erase, write, MD5
// and read routines refuse to pass it (Espressif's esp-serial-flasher
// maintainers: "ROM bootloader assumes 2 MB flash attached by default",
// espressif/esp-serial-flasher#3; esptool sends the detected size for
// that reason, esptool/cmds.py: "the flash chip should be configured with
// the real size").
const ROMFlashSize = 2 << 20

// StartupDelay is how long the ROM takes from a reset to listening; bytes
// that arrive meanwhile are lost.
const StartupDelay = 5 * time.Millisecond

// variant is what tells the modelled chips apart.
type variant struct {
	chip       esprom.Chip
	bootOffset uint32
	iram       [2]uint32 // entry points must lie in [iram[0], iram[1])
	clkdivReg  uint32    // UART_CLKDIV, which esptool reads to guess the crystal
	uartClock  int       // Hz the UART divides
	spiBase    uint32    // the SPI flash controller (SPI1 / SPI0)
	spiW0      uint32    // offset of its first data register
	bootLine   func(download bool, c sim.Cause) []string
}

var variants = map[string]variant{
	"esp32": {
		chip: esprom.ESP32, bootOffset: 0x1000, iram: [2]uint32{0x40080000, 0x400A0000},
		clkdivReg: 0x3FF40014, uartClock: 40000000, spiBase: 0x3FF42000, spiW0: 0x80,
		bootLine: func(download bool, c sim.Cause) []string {
			// The ROM's reset reasons (ESP-IDF's esp_rom rtc.h
			// RESET_REASON): the supply and the EN pin (CHIP_PU) both give
			// POWERON_RESET (1); a unit that resets itself in a boot loop
			// shows the RTC watchdog's (16).
			rst := "rst:0x1 (POWERON_RESET)"
			if c == sim.Software {
				rst = "rst:0x10 (RTCWDT_RTC_RESET)"
			}
			if download {
				return []string{"ets Jun  8 2016 00:22:57", "", rst + ",boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))", "waiting for download"}
			}
			return []string{"ets Jun  8 2016 00:22:57", "", rst + ",boot:0x13 (SPI_FAST_FLASH_BOOT)"}
		},
	},
	"esp8266": {
		chip: esprom.ESP8266, bootOffset: 0, iram: [2]uint32{0x40100000, 0x40108000},
		clkdivReg: 0x60000014, uartClock: 52000000, spiBase: 0x60000200, spiW0: 0x40,
		bootLine: func(download bool, c sim.Cause) []string {
			cause := 1
			if c != sim.PowerOn {
				cause = 2
			}
			mode := 3
			if download {
				mode = 1
			}
			return []string{"", fmt.Sprintf(" ets Jan  8 2013,rst cause:%d, boot mode:(%d,6)", cause, mode), ""}
		},
	},
}

// Names returns the chip names New accepts, sorted.
func Names() []string {
	var n []string
	for k := range variants {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func lookup(name string) (variant, error) {
	v, ok := variants[strings.ToLower(name)]
	if !ok {
		return variant{}, fmt.Errorf("espsim: no model of chip %q; choose one of %v", name, Names())
	}
	return v, nil
}

// BootOffset returns where the named chip's ROM looks for the image it
// boots: 0x1000 on the ESP32 (the second-stage bootloader's place), 0 on
// the ESP8266.
func BootOffset(chip string) (uint32, error) {
	v, err := lookup(chip)
	return v.bootOffset, err
}

// Chip returns the esprom description of the named chip.
func Chip(name string) (esprom.Chip, error) {
	v, err := lookup(name)
	return v.chip, err
}

// LineConfig returns the line an ESP ROM needs: it autobauds on SYNC (Baud
// 0 follows the host), 8N1.
func LineConfig() sim.LineConfig { return sim.LineConfig{} }

// Options set how a simulated unit is built.
type Options struct {
	// Board is the board the unit really is; an application built for
	// another target boot-loops (see sim.RunApp).
	Board string
	// MAC is the unit's MAC. Zero means one derived from Seed, under
	// Espressif's OUI 24:0A:C4 (ESP32) or 18:FE:34 (ESP8266).
	MAC  [6]byte
	Seed uint64
	// FlashSize is the SPI flash size in bytes, a multiple of 64 KiB. 0
	// means 4 MiB.
	FlashSize int
	// Image is the application at BootOffset when the unit arrives.
	Image []byte
	// Reboot is the period of a bricked unit's boot loop; 0 means 1 s.
	Reboot time.Duration
	// Timing overrides DefaultTiming when set.
	Timing *Timing
	// ROMCrystal is the crystal frequency in Hz the ESP32 ROM computes
	// from its RTC calibration of the 8 MHz clock, which drifts; 0 means
	// exactly 40 MHz. The ROM sets its UART divider for CHANGE_BAUDRATE
	// from it, so a rate asked for lands off by the drift unless the host
	// compensates as esptool's ESP32ROM.change_baud does. READ_REG of
	// RTCCALICFG1 and eFuse word 4 give it away, as on the chip.
	ROMCrystal uint32
	// SPIPins is where the ESP32's flash is wired, as its eFuse records
	// it (words 3 and 5, which READ_REG reads): zero for the default
	// pins. SPI_ATTACH reaches the flash only when told these pins
	// (esprom.SPIPins.Packed; 0 for the default ones).
	SPIPins esprom.SPIPins
}

// Faults are injected failures. Each is used up when it fires.
type Faults struct {
	// GarbleBlocks makes the next n FLASH_DATA or FLASH_DEFL_DATA blocks
	// arrive with a flipped bit, as after a line error: the checksum fails
	// and the ROM answers error 07.
	GarbleBlocks int
	// FailPrograms makes the next n block programmings read back
	// different, as a worn or write-protected flash: error 08.
	FailPrograms int
	// MangleAnswers makes the next n answers go out with a broken SLIP
	// escape (DB followed by 00), as line noise would: the host must drop
	// them.
	MangleAnswers int
	// HangAfter makes the ROM stop answering after this many more received
	// bytes, until the next reset. 0 means never.
	HangAfter int
	// MissSyncs makes the ROM ignore the next n SYNCs, across resets, as a
	// ROM whose autobaud has not locked yet (esptool sends several SYNCs
	// after each reset for this reason).
	MissSyncs int
}

// Stats counts what the model did.
type Stats struct {
	BootloaderRuns int // resets into download mode
	AppRuns        int // application starts
	BootFailures   int // boots that found no valid image
	Syncs          int // SYNCs answered
	Commands       int // requests decoded
	Errors         int // requests answered with a failure status
	BlocksWritten  int // FLASH_DATA and FLASH_DEFL_DATA blocks accepted
	BytesWritten   int // bytes programmed
	SectorsErased  int
	MD5s           int
	Hangs          int
}

// Model is one simulated ESP unit. It is safe for concurrent use.
type Model struct {
	name   string
	v      variant
	opts   Options
	timing Timing
	flash  *sim.Flash
	mac    [6]byte

	mu   sync.Mutex
	regs map[uint32]uint32 // registers WRITE_REG set
	// attached says the SPI flash is wired to the controller's pins: the
	// ESP32 ROM starts without (SPI_ATTACH with the right pins attaches
	// it), the ESP8266 ROM and the stub with.
	attached bool
	faults   Faults
	rx       int
	stats    Stats
}

var _ sim.Model = (*Model)(nil)

// New returns a unit of the named chip ("esp32" or "esp8266") with erased
// flash, or opts.Image at BootOffset.
func New(chip string, opts Options) (*Model, error) {
	v, err := lookup(chip)
	if err != nil {
		return nil, err
	}
	size := opts.FlashSize
	if size == 0 {
		size = 4 << 20
	}
	if size%(64<<10) != 0 || size <= 0 || size > 16<<20 {
		return nil, fmt.Errorf("espsim: flash of %d bytes: use a multiple of 64 KiB up to 16 MiB", size)
	}
	m := &Model{
		name:   strings.ToLower(chip),
		v:      v,
		opts:   opts,
		timing: DefaultTiming,
		flash:  sim.NewFlash(0, sim.Uniform(size/esprom.SectorSize, esprom.SectorSize)),
		mac:    opts.MAC,
		regs:   map[uint32]uint32{},
	}
	if opts.Timing != nil {
		m.timing = *opts.Timing
	}
	if m.mac == ([6]byte{}) {
		m.mac = deriveMAC(v.chip, opts.Seed)
	}
	if opts.Image != nil {
		if err := m.LoadApp(opts.Image); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func deriveMAC(chip esprom.Chip, seed uint64) [6]byte {
	r := rand.New(rand.NewPCG(seed, uint64(crc32.ChecksumIEEE([]byte(chip.Name)))))
	mac := [6]byte{0x24, 0x0A, 0xC4}
	if chip.Magic == esprom.ESP8266.Magic {
		mac = [6]byte{0x18, 0xFE, 0x34}
	}
	for i := 3; i < 6; i++ {
		mac[i] = byte(r.Uint32())
	}
	return mac
}

// Name returns the chip name the model was built with ("esp32").
func (m *Model) Name() string { return m.name }

// Chip returns the modelled ROM family.
func (m *Model) Chip() esprom.Chip { return m.v.chip }

// BootOffset returns where the ROM looks for the image it boots.
func (m *Model) BootOffset() uint32 { return m.v.bootOffset }

// Timing returns the flash timings the model spends.
func (m *Model) Timing() Timing { return m.timing }

// Flash returns the unit's SPI flash, to inspect or to damage.
func (m *Model) Flash() *sim.Flash { return m.flash }

// MAC returns the unit's MAC.
func (m *Model) MAC() [6]byte { return m.mac }

// Serial returns the MAC as esprom.FormatMAC formats it, which is also what
// the application's "id" command prints.
func (m *Model) Serial() string { return esprom.FormatMAC(m.mac) }

// SetFaults arms fault injection, replacing what was armed.
func (m *Model) SetFaults(f Faults) {
	m.mu.Lock()
	m.faults = f
	m.rx = 0
	m.mu.Unlock()
}

// Faults returns the faults still armed.
func (m *Model) Faults() Faults {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.faults
}

// Stats returns what the model did so far.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

func (m *Model) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// LoadApp puts an image at BootOffset as a factory programmer would.
func (m *Model) LoadApp(img []byte) error {
	if int(m.v.bootOffset)+len(img) > m.flash.Size() {
		return fmt.Errorf("espsim: image of %d bytes at 0x%X does not fit the %d KiB flash", len(img), m.v.bootOffset, m.flash.Size()>>10)
	}
	return m.flash.Load(m.v.bootOffset, img)
}

// reg returns the word READ_REG reads at addr: the chip-detect word, the
// MAC words, UART_CLKDIV, what WRITE_REG stored, else 0.
func (m *Model) reg(addr uint32, baud int) uint32 {
	if addr == esprom.ChipDetectReg {
		return m.v.chip.Magic
	}
	words := esprom.EncodeMAC(m.v.chip, m.mac, byte(crc32.ChecksumIEEE(m.mac[:])))
	for i, a := range m.v.chip.MACRegs {
		if a == addr {
			return words[i]
		}
	}
	if addr == m.v.clkdivReg {
		return uint32(m.v.uartClock / baud)
	}
	if m.v.chip.Magic == esprom.ESP32.Magic && (addr == esprom.RTCCaliCfg1 || addr == esprom.EfuseWord4) {
		// crystal = cali * 15625 * ck8m / 40 (esptool's
		// get_rom_cal_crystal_freq): with ck8m 128, cali = crystal / 50000.
		if addr == esprom.EfuseWord4 {
			return romCK8M
		}
		return m.romCrystal() / 50000 << 7
	}
	if m.v.chip.Magic == esprom.ESP32.Magic && (addr == esprom.EfuseWord3 || addr == esprom.EfuseWord5) {
		w3, w5 := m.opts.SPIPins.EfuseWords()
		if addr == esprom.EfuseWord3 {
			return w3
		}
		return w5
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.regs[addr]
}

// SPI controller registers and flash commands the model executes.
const (
	spiCmdUSR   = 1 << 18 // SPI_CMD_REG: start the user command; cleared when done
	spiUSR2Offs = 0x24    // SPI_USR2_REG: the command byte in bits 0-15
	flashRDID   = 0x9F
)

// JEDECID returns what the flash answers to RDID (9F), as the controller
// leaves it in its first data register: manufacturer Winbond (EF), type 40,
// then the capacity code, log2 of the size in bytes (16 for 4 MiB).
func (m *Model) JEDECID() uint32 {
	code := uint32(0)
	for n := m.flash.Size(); n > 1; n >>= 1 {
		code++
	}
	return code<<16 | 0x40<<8 | 0xEF
}

// writeReg stores a WRITE_REG and runs a user command written to the SPI
// controller, as esptool's flash_id does: RDID answers the JEDEC ID, any
// other command reads zeros.
func (m *Model) writeReg(addr, val, mask uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regs[addr] = m.regs[addr]&^mask | val&mask
	if addr != m.v.spiBase || m.regs[addr]&spiCmdUSR == 0 {
		return
	}
	var out uint32
	if m.regs[m.v.spiBase+spiUSR2Offs]&0xFFFF == flashRDID {
		out = m.JEDECID()
		if !m.attached {
			out = 0xFFFFFF // no flash on the pins the controller drives: MISO floats high
		}
	}
	m.regs[m.v.spiBase+m.v.spiW0] = out
	m.regs[addr] &^= spiCmdUSR
}

// romCK8M is the 8 MHz clock's frequency code the model's eFuse word 4
// holds.
const romCK8M = 128

func (m *Model) romCrystal() uint32 {
	if m.opts.ROMCrystal == 0 {
		return 40000000
	}
	return m.opts.ROMCrystal
}

func (m *Model) setAttached(on bool) {
	m.mu.Lock()
	m.attached = on
	m.mu.Unlock()
}

// Run runs the unit from a reset: download mode when GPIO0 was low, the
// image in flash otherwise.
func (m *Model) Run(s *sim.Session) {
	if s.Boot {
		m.count(func(st *Stats) { st.BootloaderRuns++ })
		(&rom{m: m, s: s}).run()
		return
	}
	m.boot(s)
}

// printROM prints lines at the ROM's boot rate.
func (m *Model) printROM(s *sim.Session, lines []string) error {
	s.SetBaud(m.v.chip.BootBaud)
	for _, l := range lines {
		if err := s.Print(l + "\r\n"); err != nil {
			return err
		}
	}
	return nil
}

// boot starts the image at BootOffset, or boot-loops saying what is wrong.
func (m *Model) boot(s *sim.Session) {
	if m.printROM(s, m.v.bootLine(false, s.Cause)) != nil {
		return
	}
	m.runImage(s)
}

// BootloaderTarget is the target an image at the ESP32's boot offset
// carries when it is the second-stage bootloader rather than an
// application: it loads the application from AppOffset, as ESP-IDF's
// bootloader loads the factory partition.
const BootloaderTarget = "idf-bootloader"

// AppOffset is where the ESP32's second-stage bootloader finds the
// application: the factory app partition of ESP-IDF's default table.
const AppOffset = 0x10000

// idfBootError is what ESP-IDF's second stage prints when the app it loads
// is not bootable.
type idfBootError struct{ err error }

func (e *idfBootError) Error() string {
	return fmt.Sprintf("E (41) esp_image: %v\r\nE (45) boot: Factory app partition is not bootable", e.err)
}

func (e *idfBootError) Unwrap() error { return e.err }

// BootloaderImage returns a second-stage bootloader for the named chip: a
// valid ESP image that, at boot, loads the application at AppOffset.
func BootloaderImage(chip string) ([]byte, error) {
	return AppImage(chip, "5.1", BootloaderTarget, 16<<10)
}

func (m *Model) runImage(s *sim.Session) {
	d, err := m.checkImageAt(m.v.bootOffset)
	if err == nil && d.Target == BootloaderTarget {
		// ESP-IDF's second stage: it reports itself, then loads the app.
		lines := []string{fmt.Sprintf("I (29) boot: ESP-IDF v%s 2nd stage bootloader", d.Version),
			fmt.Sprintf("I (35) boot: Loaded app from partition at offset 0x%x", AppOffset)}
		if m.printROM(s, lines) != nil {
			return
		}
		d, err = m.checkImageAt(AppOffset)
		if err != nil {
			err = &idfBootError{err}
		}
	}
	if err != nil {
		m.count(func(st *Stats) { st.BootFailures++ })
		s.SetBaud(m.v.chip.BootBaud)
		sim.BootLoop(s, err.Error(), m.opts.Reboot)
		return
	}
	m.count(func(st *Stats) { st.AppRuns++ })
	// The ROM reports what it loads, at its own rate, then jumps.
	entry := m.v.iram[0]
	load := []string{"mode:DIO, clock div:2", fmt.Sprintf("load:0x%08x,len:%d", entry, d.Length-uint32(DescOffset)), fmt.Sprintf("entry 0x%08x", entry)}
	if m.v.chip.Magic == esprom.ESP8266.Magic {
		load = []string{fmt.Sprintf("load 0x%08x, len %d, room 16", entry, d.Length-uint32(DescOffset))}
	}
	if m.printROM(s, load) != nil {
		return
	}
	sim.RunApp(s, sim.AppConsole{Desc: d, Board: m.opts.Board, ID: m.Serial(), Baud: 115200, Reboot: m.opts.Reboot})
}

// Errors the ROM's boot code reports.
var (
	ErrInvalidHeader  = errors.New("invalid header")
	ErrBadSegments    = errors.New("invalid segment count")
	ErrBadEntry       = errors.New("invalid entry point")
	ErrImageChecksum  = errors.New("checksum failure")
	ErrImageTruncated = errors.New("image runs past the end of flash")
)

// checkImageAt checks the image at off as the ROM (header, segment
// count, entry point) and the sim boot code (descriptor, CRC) do.
func (m *Model) checkImageAt(off uint32) (sim.AppDescriptor, error) {
	mem, err := m.flash.Read(off, m.flash.Size()-int(off))
	if err != nil || len(mem) < DescOffset+sim.DescriptorSize {
		return sim.AppDescriptor{}, fmt.Errorf("%w: no room for an image at 0x%X", ErrInvalidHeader, off)
	}
	if mem[0] != ImageMagic {
		return sim.AppDescriptor{}, fmt.Errorf("%w: 0x%08x", ErrInvalidHeader, binary.LittleEndian.Uint32(mem))
	}
	if mem[1] == 0 || mem[1] > 16 {
		return sim.AppDescriptor{}, fmt.Errorf("%w: %d", ErrBadSegments, mem[1])
	}
	entry := binary.LittleEndian.Uint32(mem[4:])
	if entry < m.v.iram[0] || entry >= m.v.iram[1] {
		return sim.AppDescriptor{}, fmt.Errorf("%w: 0x%08x is not in IRAM", ErrBadEntry, entry)
	}
	d, err := sim.ParseApp(mem, DescOffset)
	switch {
	case errors.Is(err, sim.ErrBadChecksum):
		return d, fmt.Errorf("%w: image at 0x%X", ErrImageChecksum, off)
	case errors.Is(err, sim.ErrTruncated):
		return d, fmt.Errorf("%w: image at 0x%X", ErrImageTruncated, off)
	case err != nil:
		return d, fmt.Errorf("%w: image at 0x%X: %v", ErrInvalidHeader, off, err)
	}
	return d, nil
}
