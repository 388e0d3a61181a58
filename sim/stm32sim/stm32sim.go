// Package stm32sim models an STM32F103, STM32F407 or STM32L476 for the
// virtual bench (FIDELITY.md lists each behaviour, its source and its test):
// a sim.Model whose ROM speaks the USART system bootloader protocol of ST
// application note AN3155
// (https://www.st.com/resource/en/application_note/an3155-usart-protocol-used-in-the-stm32-bootloader-stmicroelectronics.pdf)
// byte for byte, over a memory map that behaves like the part's (RM0008 for
// the F1, RM0090 for the F4; bootloader versions and reserved RAM from
// AN2606).
//
// What it models:
//
//   - Boot: at each reset the BOOT0 strap (sim.Session.Boot) selects the
//     system bootloader; otherwise the part boots from flash. A valid
//     application image (see AppImage: a vector table whose initial stack
//     pointer lies in SRAM and whose reset vector points into flash with
//     the Thumb bit set, and the sim app descriptor at DescOffset) runs the
//     sim demo console; erased flash, a bad vector table or a bad image
//     checksum print one line saying so and reset about once a second: the
//     bricked state.
//   - The line: the ROM frames 8E1 (AN3155); a host at another parity gets
//     what a UART gives it (see sim.LineConfig.Framing): the sync byte and
//     its ACK pass at 8N1, GET does not. The application's console is 8N1.
//   - The bootloader: it times the first frame as 0x7F (the line's Baud is
//     0: it follows the host) and answers ACK, then serves commands. A
//     first frame that is not 0x7F locks it at a wrong rate until reset.
//     The F407 and L476 refuse READs of their device information as their
//     silicon does (the F407 serves a READ that runs into it from the OTP
//     before it; the L476 none). The F103 has
//     bootloader v2.2 with ERASE (0x43); the F407 v3.1 with EXTENDED ERASE
//     (0x44). Anything not offered, a wrong complement (including a
//     repeated 0x7F), a bad checksum, an address outside the memory map, an
//     unaligned WRITE, and READ, WRITE, ERASE and GO under read protection
//     are answered NACK.
//   - Flash: a sim.Flash at 0x08000000 with the part's pages or sectors.
//     Programming ANDs, so writing without erasing corrupts, and the ROM
//     still answers ACK, as silicon does. Programming and erasing take the
//     datasheet's typical times (see Timings) as busy time on the line.
//   - Option bytes: readout protection (RDP level 1) and write protection.
//     READOUT_UNPROTECT answers ACK, mass-erases, clears RDP, answers ACK and
//     resets the unit; READOUT_PROTECT, WRITE_PROTECT and WRITE_UNPROTECT
//     also reset it.
//   - GO jumps to a vector table in flash (running the application in the
//     same session, or boot-looping if it is not valid) or in RAM, where
//     only stm32flash's reset stub (a write of SYSRESETREQ to AIRCR) does
//     something: the unit resets. Any other RAM code locks the core up.
//   - The 96-bit unique ID (from Options or derived from a seed, in ST's
//     layout: wafer X and Y, wafer number, lot number) and the flash-size
//     register, readable with READ like on silicon.
//
// Fault knobs (SetFaults) make a unit NACK a WRITE, stop answering after a
// number of received bytes, or answer one ACK with a wrong byte.
package stm32sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
)

// FlashTiming is how long the modelled flash takes to work.
type FlashTiming struct {
	// Program is the time to program one ProgramUnit of bytes.
	Program     time.Duration
	ProgramUnit int
	// Erase is the time to erase one unit, by unit size in bytes.
	Erase     map[uint32]time.Duration
	MassErase time.Duration
}

// ProgramTime returns the time to program n bytes.
func (t FlashTiming) ProgramTime(n int) time.Duration {
	units := (n + t.ProgramUnit - 1) / t.ProgramUnit
	return time.Duration(units) * t.Program
}

// EraseTime returns the time to erase one unit of size bytes.
func (t FlashTiming) EraseTime(size uint32) time.Duration { return t.Erase[size] }

// Timings are the typical flash timings the model spends as busy time,
// from the datasheets' flash characteristics tables:
//
//   - STM32F103x8/xB (DS5319, table "Flash memory characteristics"): 16-bit
//     programming 52.5 µs, page (1 KiB) erase 20 ms, mass erase 20 ms.
//   - STM32F405/407 (DS8626, table "Flash memory programming", x32
//     parallelism as at 2.7 to 3.6 V): word programming 16 µs, 16 KiB
//     sector erase 250 ms, 64 KiB 550 ms, 128 KiB 1 s, mass erase 8 s.
//     Silicon at x8 parallelism takes about twice as long (up to 32 s for
//     a mass erase).
var Timings = map[string]FlashTiming{
	"stm32f103": {
		Program: 52500 * time.Nanosecond, ProgramUnit: 2,
		Erase:     map[uint32]time.Duration{1 << 10: 20 * time.Millisecond},
		MassErase: 20 * time.Millisecond,
	},
	// STM32L476 (DS11451, "Flash memory characteristics"): 64-bit
	// programming 81.69 µs, page (2 KiB) erase 22.02 ms, mass erase
	// 22.13 ms, typical.
	"stm32l476": {
		Program: 81690 * time.Nanosecond, ProgramUnit: 8,
		Erase:     map[uint32]time.Duration{2 << 10: 22020 * time.Microsecond},
		MassErase: 22130 * time.Microsecond,
	},
	"stm32f407": {
		Program: 16 * time.Microsecond, ProgramUnit: 4,
		Erase: map[uint32]time.Duration{
			16 << 10:  250 * time.Millisecond,
			64 << 10:  550 * time.Millisecond,
			128 << 10: time.Second,
		},
		MassErase: 8 * time.Second,
	},
}

// StartupDelay is how long the ROM takes from a reset to listening; bytes
// that arrive meanwhile are lost.
const StartupDelay = 2 * time.Millisecond

// variant is what distinguishes the modelled parts.
type variant struct {
	pid      uint16
	version  byte   // bootloader version (AN2606)
	cmds     []byte // what GET lists
	vectors  int    // vector table entries (16 system + the part's IRQs)
	wrpGroup int    // erase units per write-protection bit
	// info lists read-only areas besides system memory (OTP, the device
	// information block with the unique ID and the flash-size register),
	// erased (0xFF) but for the ID and the size.
	info []stm32.Region
	// noReadStart lists areas where a READ may not start (NACK at the
	// address stage) though it may run into them from an area before;
	// noRead areas no READ may touch.
	noReadStart []stm32.Region
	noRead      []stm32.Region
}

var (
	f1Cmds = []byte{stm32.CmdGet, stm32.CmdGetVersion, stm32.CmdGetID, stm32.CmdRead, stm32.CmdGo, stm32.CmdWrite,
		stm32.CmdErase, stm32.CmdWriteProtect, stm32.CmdWriteUnprotect, stm32.CmdReadoutProtect, stm32.CmdReadoutUnprotect}
	f4Cmds = []byte{stm32.CmdGet, stm32.CmdGetVersion, stm32.CmdGetID, stm32.CmdRead, stm32.CmdGo, stm32.CmdWrite,
		stm32.CmdExtendedErase, stm32.CmdWriteProtect, stm32.CmdWriteUnprotect, stm32.CmdReadoutProtect, stm32.CmdReadoutUnprotect}
)

var variants = map[string]variant{
	// F103 medium density: bootloader v2.2; WRP bits cover 4 pages each.
	// The unique ID and flash size lie inside system memory (RM0008
	// §30), which READ reads whole.
	"stm32f103": {pid: 0x410, version: 0x22, cmds: f1Cmds, vectors: 16 + 43, wrpGroup: 4},
	// F407: bootloader v3.1; one nWRP bit per sector. OTP at 0x1FFF7800
	// (528 bytes), the device information after it (RM0090 §39: unique ID
	// 0x1FFF7A10, flash size 0x1FFF7A22). The ROM refuses a READ that
	// starts in the device information (reported for the STM32F401: ST
	// community thread "STM32F401 Bootloader Read Memory command failed",
	// 2014; stm32loader device_family.py LONG_UID_ACCESS for the F4 family:
	// "can't read the 12 or 2 bytes for UID and flash size directly",
	// a 256-byte READ from 0x1FFF7A00 works); the model does so on the F407
	// too, the stricter reading.
	"stm32f407": {pid: 0x413, version: 0x31, cmds: f4Cmds, vectors: 16 + 82, wrpGroup: 1,
		info:        []stm32.Region{{Start: 0x1FFF7800, Size: 0x400}},
		noReadStart: []stm32.Region{{Start: 0x1FFF7A10, Size: 0x1F0}}},
	// L476: bootloader protocol v3.1 (ID 0xA3 or 0x92, stm32loader
	// devices.py), EXTENDED ERASE, 2 KiB pages. OTP at 0x1FFF7000 (1 KiB),
	// the device information at 0x1FFF7500 (RM0351 §48: unique ID
	// 0x1FFF7590, flash size 0x1FFF75E0). Its ROM NACKs every READ of the
	// device information (AN2606 as issue 9 of this project reports it for
	// several L4 and G parts); no window reaches it from the OTP.
	"stm32l476": {pid: 0x415, version: 0x31, cmds: f4Cmds, vectors: 16 + 82, wrpGroup: 2,
		info:   []stm32.Region{{Start: 0x1FFF7000, Size: 0x400}, {Start: 0x1FFF7500, Size: 0x100}},
		noRead: []stm32.Region{{Start: 0x1FFF7500, Size: 0x100}}},
}

// Names returns the part names New accepts, sorted.
func Names() []string {
	var n []string
	for k := range variants {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func lookup(name string) (variant, stm32.Part, FlashTiming, error) {
	v, ok := variants[name]
	if !ok {
		return variant{}, stm32.Part{}, FlashTiming{}, fmt.Errorf("stm32sim: no model of part %q; choose one of %v", name, Names())
	}
	p, ok := stm32.LookupPID(v.pid)
	if !ok {
		return variant{}, stm32.Part{}, FlashTiming{}, fmt.Errorf("stm32sim: part %q (PID 0x%03X) missing from the stm32 part table", name, v.pid)
	}
	return v, p, Timings[name], nil
}

// LineConfig returns the line an STM32 USART bootloader needs: the ROM
// autobauds (Baud 0 follows the host) and frames 8E1 (AN3155 §2), 11 bit
// times a byte. A host whose port is not at even parity gets what a real
// unit gives it: 7F, 79 and 1F cross unharmed, GET's 00 FF does not.
func LineConfig() sim.LineConfig {
	return sim.LineConfig{BitsPerByte: 11, Framing: sim.Framing8E1}
}

// Options set how a simulated unit is built.
type Options struct {
	// Board is the board the unit really is; an application built for
	// another target boot-loops (see sim.RunApp).
	Board string
	// UID is the 96-bit unique ID. Zero means one derived from Seed and the
	// part name, so that units with different seeds differ.
	UID  [12]byte
	Seed uint64
	// Image is the application in flash at 0x08000000 when the unit arrives.
	Image []byte
	// ReadoutProtect sets RDP level 1 on arrival.
	ReadoutProtect bool
	// Reboot is the period of a bricked unit's boot loop; 0 means 1 s.
	Reboot time.Duration
	// Checksum makes GET list GET_CHECKSUM (0xA1) and the ROM serve it,
	// as the bootloaders that have the command do (AN3155 Rev 14, June
	// 2021, §3.13 "Get Checksum command"; the wire format and the CRC as
	// stm32flash 0.7 uses them: stm32.c, stm32_crc_memory and
	// stm32_sw_crc). Which ROM versions have it is AN2606's per-product
	// command list; the GET answers of the F103's v2.2 and the F407's v3.1
	// that this model gives (see variants) list no 0xA1, so no modelled
	// part has it by default, and an image half 0xFF is verified on them
	// by reading every byte back.
	Checksum bool
	// NoMassErase makes the ROM refuse the mass-erase codes (ERASE FF 00,
	// EXTENDED ERASE FF FF): the parts stm32flash marks F_NO_ME (the L0
	// and L1) do; a host must erase page by page.
	NoMassErase bool
}

// Faults are injected failures for the job layer's tests. Each is used up
// when it fires.
type Faults struct {
	// NACKWrites makes the next n WRITEs to flash fail after their data
	// (as a flash that does not program): the ROM answers NACK and the
	// flash keeps its contents.
	NACKWrites int
	// HangAfter makes the ROM stop answering after this many more received
	// bytes, until the next reset: a hung unit. 0 means never.
	HangAfter int
	// WrongAck makes the ROM send this byte instead of its next ACK, once.
	// 0 means none.
	WrongAck byte
}

// Stats counts what the model did.
type Stats struct {
	BootloaderRuns int // resets into the system bootloader
	AppRuns        int // application starts (at reset or by GO)
	BootFailures   int // boots from flash that found no valid image
	Syncs          int // 0x7F answered ACK
	AutobaudMisses int // first frames that locked the ROM at a wrong rate
	Commands       int // commands received with a good complement
	NACKs          int
	BlocksWritten  int // WRITEs that programmed flash
	DirtyWrites    int // WRITEs that hit bytes that were not erased
	UnitsErased    int // pages or sectors erased (a mass erase counts all)
	MassErases     int
	Hangs          int // HangAfter faults that fired
}

// segment is a read-only memory: system memory, OTP, device information.
type segment struct {
	r    stm32.Region
	data []byte
}

// Model is one simulated STM32 unit. It is safe for concurrent use.
type Model struct {
	name   string
	v      variant
	part   stm32.Part
	timing FlashTiming
	opts   Options
	flash  *sim.Flash
	uid    [12]byte
	rom    []segment

	mu     sync.Mutex
	ram    []byte
	rdp    bool
	wrp    map[int]bool // write-protected groups
	faults Faults
	rx     int // bytes received since the hang fault was armed
	stats  Stats
	// listening is set while the system bootloader runs past its start-up;
	// listenCh is closed and replaced when it changes.
	listening bool
	listenCh  chan struct{}
}

var _ sim.Model = (*Model)(nil)

// New returns a unit of the named part ("stm32f103" or "stm32f407") with
// erased flash, or opts.Image loaded at 0x08000000.
func New(partName string, opts Options) (*Model, error) {
	v, p, t, err := lookup(partName)
	if err != nil {
		return nil, err
	}
	m := &Model{
		name:   partName,
		v:      v,
		part:   p,
		timing: t,
		opts:   opts,
		flash:  sim.NewFlash(p.FlashBase, p.Layout),
		uid:    opts.UID,
		ram:    make([]byte, p.RAM.Size),
		rdp:    opts.ReadoutProtect,
		wrp:    map[int]bool{},

		listenCh: make(chan struct{}),
	}
	if m.uid == ([12]byte{}) {
		m.uid = deriveUID(partName, opts.Seed)
	}
	if opts.Checksum {
		m.v.cmds = append(slices.Clone(m.v.cmds), stm32.CmdGetChecksum)
	}
	m.buildROM()
	if opts.Image != nil {
		if err := m.LoadApp(opts.Image); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// deriveUID makes a unique ID in ST's layout: X and Y of the die on the
// wafer (16 bits each), the wafer number, and a 7-character lot number.
func deriveUID(name string, seed uint64) [12]byte {
	r := rand.New(rand.NewPCG(seed, uint64(crc32.ChecksumIEEE([]byte(name)))))
	var u [12]byte
	binary.LittleEndian.PutUint16(u[0:], uint16(r.IntN(200)))
	binary.LittleEndian.PutUint16(u[2:], uint16(r.IntN(200)))
	u[4] = byte(1 + r.IntN(25))
	const lot = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := 5; i < 12; i++ {
		u[i] = lot[r.IntN(len(lot))]
	}
	return u
}

// buildROM lays out the read-only memories: system memory (stand-in bytes
// for the ROM code, the same on every unit of a part) and the variant's
// other areas (OTP, device information) erased, then the unique ID and the
// flash-size register where the part has them.
func (m *Model) buildROM() {
	p := m.part
	sys := make([]byte, p.SystemMemory.Size)
	r := rand.New(rand.NewPCG(uint64(crc32.ChecksumIEEE([]byte("bootloader/"+m.name))), 1))
	for i := range sys {
		sys[i] = byte(r.Uint32())
	}
	m.rom = append(m.rom, segment{p.SystemMemory, sys})
	for _, reg := range m.v.info {
		b := make([]byte, reg.Size)
		for i := range b {
			b[i] = 0xFF
		}
		m.rom = append(m.rom, segment{reg, b})
	}
	m.poke(p.UIDAddr, m.uid[:])
	var fs [2]byte
	binary.LittleEndian.PutUint16(fs[:], uint16(p.FlashSize()>>10))
	m.poke(p.FlashSizeAddr, fs[:])
}

// readable reports whether the ROM serves a READ of n bytes at addr as far
// as the variant's refused areas go, and at which stage it refuses.
func (m *Model) readRefused(addr uint32, n int) (atAddress, atLength bool) {
	for _, reg := range m.v.noReadStart {
		if reg.Contains(addr, 1) {
			return true, false
		}
	}
	for _, reg := range m.v.noRead {
		if reg.Contains(addr, 1) {
			return true, false
		}
		if uint64(addr) < reg.End() && uint64(addr)+uint64(n) > uint64(reg.Start) {
			return false, true
		}
	}
	return false, false
}

func (m *Model) poke(addr uint32, b []byte) {
	for _, s := range m.rom {
		if s.r.Contains(addr, len(b)) {
			copy(s.data[addr-s.r.Start:], b)
			return
		}
	}
	panic(fmt.Sprintf("stm32sim: no ROM segment holds 0x%08X", addr))
}

// Name returns the part name the model was built with ("stm32f103").
func (m *Model) Name() string { return m.name }

// Part returns the modelled part.
func (m *Model) Part() stm32.Part { return m.part }

// Timing returns the flash timings the model spends.
func (m *Model) Timing() FlashTiming { return m.timing }

// BootloaderVersion returns the version GET reports (0x22 is v2.2).
func (m *Model) BootloaderVersion() byte { return m.v.version }

// Commands returns the command codes GET lists.
func (m *Model) Commands() []byte { return slices.Clone(m.v.cmds) }

// Flash returns the unit's flash, to inspect or to damage.
func (m *Model) Flash() *sim.Flash { return m.flash }

// UID returns the unit's 96-bit unique ID.
func (m *Model) UID() [12]byte { return m.uid }

// Serial returns the unique ID as stm32.FormatUID formats it, which is also
// what the application's "id" command prints.
func (m *Model) Serial() string { return stm32.FormatUID(m.uid) }

// ReadoutProtected reports whether RDP level 1 is set.
func (m *Model) ReadoutProtected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rdp
}

// SetReadoutProtect sets or clears RDP level 1 as a debugger would, without
// erasing anything.
func (m *Model) SetReadoutProtect(on bool) {
	m.mu.Lock()
	m.rdp = on
	m.mu.Unlock()
}

// WriteProtected returns the erase units that write protection covers.
func (m *Model) WriteProtected() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var units []int
	for g := range m.wrp {
		for i := g * m.v.wrpGroup; i < (g+1)*m.v.wrpGroup && i < m.part.Units(); i++ {
			units = append(units, i)
		}
	}
	sort.Ints(units)
	return units
}

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

func (m *Model) setListening(on bool) {
	m.mu.Lock()
	m.listening = on
	close(m.listenCh)
	m.listenCh = make(chan struct{})
	m.mu.Unlock()
}

// WaitBootloader waits until the system bootloader has started and listens
// (bytes sent before that are lost, as on silicon: StartupDelay), or ctx
// ends. Tests that start a real tool right after powering a unit use it.
func (m *Model) WaitBootloader(ctx context.Context) error {
	for {
		m.mu.Lock()
		on, ch := m.listening, m.listenCh
		m.mu.Unlock()
		if on {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns what the model did so far.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// RAM returns a copy of n bytes of SRAM at addr.
func (m *Model) RAM(addr uint32, n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.part.RAM.Contains(addr, n) {
		return nil, fmt.Errorf("stm32sim: 0x%08X+%d is outside SRAM %v", addr, n, m.part.RAM)
	}
	return slices.Clone(m.ram[addr-m.part.RAM.Start:][:n]), nil
}

// LoadApp puts an image at the start of flash as a factory programmer
// would, whatever was there.
func (m *Model) LoadApp(img []byte) error {
	if len(img) > m.flash.Size() {
		return fmt.Errorf("stm32sim: image of %d bytes does not fit the %d KiB flash of %s", len(img), m.flash.Size()>>10, m.name)
	}
	return m.flash.Load(m.part.FlashBase, img)
}

// optionBytes returns the option bytes as READ shows them: on the F1 each
// byte followed by its complement (RDP 0xA5 means unprotected; WRP bits are
// 0 where protected); on the F4 the user byte, RDP (0xAA unprotected) and
// the nWRP bits (1 where unprotected).
func (m *Model) optionBytes() []byte {
	b := make([]byte, m.part.OptionBytes.Size)
	if m.part.SystemMemory.Start == 0x1FFFF000 { // F1
		rdp := byte(0xA5)
		if m.rdp {
			rdp = 0x00
		}
		wrp := uint32(0xFFFFFFFF)
		for g := range m.wrp {
			wrp &^= 1 << g
		}
		vals := []byte{rdp, 0xFF, 0xFF, 0xFF, byte(wrp), byte(wrp >> 8), byte(wrp >> 16), byte(wrp >> 24)}
		for i, v := range vals {
			b[2*i], b[2*i+1] = v, ^v
		}
		return b
	}
	rdp := byte(0xAA)
	if m.rdp {
		rdp = 0x55
	}
	nwrp := uint16(0x0FFF)
	for g := range m.wrp {
		nwrp &^= 1 << g
	}
	b[0], b[1] = 0xEC, rdp
	b[2], b[3] = ^b[0], ^rdp
	for i := 4; i < 8; i++ {
		b[i] = 0xFF
	}
	binary.LittleEndian.PutUint16(b[8:], nwrp)
	binary.LittleEndian.PutUint16(b[10:], ^nwrp)
	for i := 12; i < len(b); i++ {
		b[i] = 0xFF
	}
	return b
}

// Memory areas the bootloader knows.
type area int

const (
	noArea area = iota
	flashArea
	ramArea
	romArea
	optArea
)

// areaOf returns the memory area holding addr and its extent.
func (m *Model) areaOf(addr uint32) (area, stm32.Region) {
	p := m.part
	switch {
	case p.Flash().Contains(addr, 1):
		return flashArea, p.Flash()
	case p.RAM.Contains(addr, 1):
		return ramArea, p.RAM
	case p.OptionBytes.Contains(addr, 1):
		return optArea, p.OptionBytes
	}
	for _, s := range m.rom {
		if s.r.Contains(addr, 1) {
			return romArea, s.r
		}
	}
	return noArea, stm32.Region{}
}

// read reads n bytes of any readable memory; the caller holds no lock.
func (m *Model) read(addr uint32, n int) ([]byte, bool) {
	a, r := m.areaOf(addr)
	if a == noArea || !r.Contains(addr, n) {
		return nil, false
	}
	switch a {
	case flashArea:
		b, err := m.flash.Read(addr, n)
		return b, err == nil
	case ramArea:
		b, err := m.RAM(addr, n)
		return b, err == nil
	case optArea:
		m.mu.Lock()
		defer m.mu.Unlock()
		return slices.Clone(m.optionBytes()[addr-r.Start:][:n]), true
	}
	for _, s := range m.rom {
		if s.r.Contains(addr, n) {
			return slices.Clone(s.data[addr-s.r.Start:][:n]), true
		}
	}
	return nil, false
}

// errors the boot code reports.
var (
	// ErrErased is flash whose vector table reads all ones.
	ErrErased = errors.New("flash erased: no vector table")
	// ErrBadVectorTable is a vector table whose initial stack pointer is
	// not in SRAM or whose reset vector is not a Thumb address in flash.
	ErrBadVectorTable = errors.New("bad vector table")
)

// Run runs the unit from a reset: the system bootloader when the strap is
// asserted, the application in flash otherwise.
func (m *Model) Run(s *sim.Session) {
	if s.Cause == sim.PowerOn {
		m.mu.Lock()
		clear(m.ram) // SRAM loses its contents without power
		m.mu.Unlock()
	}
	if s.Boot {
		m.runBootloader(s)
		return
	}
	m.runImage(s, m.part.FlashBase)
}
