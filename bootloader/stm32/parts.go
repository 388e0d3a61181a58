package stm32

import (
	"fmt"
	"sort"
	"time"
)

// Region is an address range [Start, Start+Size).
type Region struct {
	Start uint32
	Size  uint32
}

// End returns the first address after r.
func (r Region) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

// Contains reports whether [addr, addr+n) lies inside r.
func (r Region) Contains(addr uint32, n int) bool {
	return addr >= r.Start && uint64(addr)+uint64(n) <= r.End()
}

func (r Region) String() string { return fmt.Sprintf("0x%08X-0x%08X", r.Start, r.End()-1) }

// Part describes an STM32 part as its system bootloader presents it: where
// its memories are, how its flash erases, where its unique ID sits.
type Part struct {
	PID    uint16
	Name   string // as stm32flash names it: "STM32F10xxx Medium-density"
	Family string // "F1", "F4", "L4", ...
	// FlashBase is the start of the main flash (0x08000000 on every STM32).
	FlashBase uint32
	// Layout lists the sizes of the erase units (pages on the F1, sectors
	// on the F2 and F4) from FlashBase upward.
	Layout []uint32
	// UIDAddr is where the 96-bit unique ID is (0: the part has none the
	// bootloader can read); FlashSizeAddr the 16-bit flash-size register
	// in KiB (0: none, as on the F2). On the L0 and L1 the ID's three words
	// are not contiguous: UIDWords gives their offsets from UIDAddr.
	UIDAddr       uint32
	UIDWords      [3]uint32
	FlashSizeAddr uint32
	RAM           Region // SRAM the bootloader can read and write
	// BootloaderRAM is how many bytes at the start of RAM the bootloader
	// uses itself (AN2606); writes there are refused.
	BootloaderRAM uint32
	SystemMemory  Region // the ROM holding the bootloader
	OptionBytes   Region
	// NoMassErase is set for parts whose bootloader refuses the mass-erase
	// code (stm32flash's F_NO_ME: the L0 and L1): erase page by page.
	NoMassErase bool
	// EraseMaxPerKiB bounds the time an erase unit takes, per KiB of its
	// size, and MassEraseMax a mass erase: the datasheet maxima, used to
	// size deadlines.
	EraseMaxPerKiB time.Duration
	MassEraseMax   time.Duration
}

// uidOffsets returns the offsets of the unique ID's three words from
// UIDAddr.
func (p Part) uidOffsets() [3]uint32 {
	if p.UIDWords == ([3]uint32{}) {
		return [3]uint32{0, 4, 8}
	}
	return p.UIDWords
}

// Flash returns the main flash as a region.
func (p Part) Flash() Region { return Region{p.FlashBase, p.FlashSize()} }

// FlashSize returns the main flash size in bytes.
func (p Part) FlashSize() uint32 {
	var n uint32
	for _, s := range p.Layout {
		n += s
	}
	return n
}

// Units returns the number of erase units.
func (p Part) Units() int { return len(p.Layout) }

// Unit returns erase unit i.
func (p Part) Unit(i int) (Region, bool) {
	if i < 0 || i >= len(p.Layout) {
		return Region{}, false
	}
	a := p.FlashBase
	for _, s := range p.Layout[:i] {
		a += s
	}
	return Region{a, p.Layout[i]}, true
}

// UnitAt returns the index of the erase unit holding addr.
func (p Part) UnitAt(addr uint32) (int, bool) {
	a := p.FlashBase
	if addr < a {
		return 0, false
	}
	for i, s := range p.Layout {
		if addr-a < s {
			return i, true
		}
		a += s
	}
	return 0, false
}

// UnitsIn returns the erase units that [start, start+size) touches, in
// order: exactly what must be erased before writing there.
func (p Part) UnitsIn(start, size uint32) ([]int, error) {
	if size == 0 {
		return nil, nil
	}
	if !p.Flash().Contains(start, int(size)) {
		return nil, fmt.Errorf("stm32: region 0x%08X+%d is outside the flash of %s (%v)", start, size, p.Name, p.Flash())
	}
	first, _ := p.UnitAt(start)
	last, _ := p.UnitAt(start + size - 1)
	units := make([]int, 0, last-first+1)
	for i := first; i <= last; i++ {
		units = append(units, i)
	}
	return units, nil
}

// EraseBudget returns the longest erase unit i may take to erase.
func (p Part) EraseBudget(i int) time.Duration {
	if i < 0 || i >= len(p.Layout) {
		return 0
	}
	return p.EraseMaxPerKiB * time.Duration((p.Layout[i]+1023)/1024)
}

func (p Part) String() string {
	return fmt.Sprintf("%s (PID 0x%03X, %d KiB flash)", p.Name, p.PID, p.FlashSize()/1024)
}

func uniform(n int, size uint32) []uint32 {
	l := make([]uint32, n)
	for i := range l {
		l[i] = size
	}
	return l
}

// f2f4 returns the F2/F4 sector layout: four 16 KiB sectors, one of 64 KiB,
// then n of 128 KiB.
func f2f4(n int) []uint32 {
	return append([]uint32{16 << 10, 16 << 10, 16 << 10, 16 << 10, 64 << 10}, uniform(n, 128<<10)...)
}

// Flash timing bounds for deadlines, from the datasheets' "Flash memory
// characteristics" tables, rounded up: STM32F103x8/B (DS5319) page erase
// and mass erase at most 40 ms; STM32F405/407 (DS8626) at x8 parallelism,
// the slowest, a 16 KiB sector at most 800 ms, a 128 KiB one 4 s, a mass
// erase 32 s; the G0, G4, L4 and WB (DS12766, DS12288, DS11451, DS11929)
// a 2 or 4 KiB page at most about 40 ms and a mass erase about as long;
// the L0 and L1 (DS10182, DS7137) a 128 or 256-byte page about 4 ms; the
// H7 (DS12110) a 128 KiB sector up to 4 s.
const (
	f1EraseMaxPerKiB = 40 * time.Millisecond
	f1MassEraseMax   = 40 * time.Millisecond
	f4EraseMaxPerKiB = 50 * time.Millisecond
	f4MassEraseMax   = 32 * time.Second
	gEraseMaxPerKiB  = 25 * time.Millisecond
	gMassEraseMax    = time.Second
	lEraseMaxPerKiB  = 40 * time.Millisecond
)

const (
	flashBase = 0x08000000
	sramBase  = 0x20000000
)

// Where the unique ID and the flash-size register are (the reference
// manuals' "Device electronic signature" sections: RM0091 F0, RM0008 F1,
// RM0033 F2, RM0316 F3, RM0090 F4, RM0431/RM0385 F7, RM0444 G0, RM0440 G4,
// RM0377 L0, RM0038 L1, RM0351 L4, RM0433 H7, RM0434 WB).
type sig struct{ uid, size uint32 }

var (
	sigF0  = sig{0x1FFFF7AC, 0x1FFFF7CC}
	sigF1  = sig{0x1FFFF7E8, 0x1FFFF7E0}
	sigF2  = sig{0x1FFF7A10, 0}
	sigF4  = sig{0x1FFF7A10, 0x1FFF7A22}
	sigF72 = sig{0x1FF07A10, 0x1FF07A22}
	sigF74 = sig{0x1FF0F420, 0x1FF0F442}
	sigG   = sig{0x1FFF7590, 0x1FFF75E0} // G0, G4, L4, WB
	sigL0  = sig{0x1FF80050, 0x1FF8007C}
	sigL1a = sig{0x1FF80050, 0x1FF8004C} // L1 category 1 and 2
	sigL1b = sig{0x1FF800D0, 0x1FF800CC} // L1 category 3 and up
	sigH7  = sig{0x1FF1E800, 0x1FF1E880}
)

// mk builds a table row the way stm32flash's dev_table.c lays its rows
// out: the RAM the bootloader leaves free (start and end), the flash size
// and its erase units, the option bytes, the system memory.
func mk(pid uint16, name, family string, ramLo, ramHi uint32, layout []uint32, opt, sys Region, id sig) Part {
	p := Part{PID: pid, Name: name, Family: family, FlashBase: flashBase, Layout: layout,
		UIDAddr: id.uid, FlashSizeAddr: id.size,
		RAM: Region{sramBase, ramHi - sramBase}, BootloaderRAM: ramLo - sramBase,
		SystemMemory: sys, OptionBytes: opt}
	switch family {
	case "F0", "F1", "F3":
		p.EraseMaxPerKiB, p.MassEraseMax = f1EraseMaxPerKiB, f1MassEraseMax
	case "F2", "F4", "F7", "H7":
		p.EraseMaxPerKiB, p.MassEraseMax = f4EraseMaxPerKiB, f4MassEraseMax
	case "L0", "L1":
		p.EraseMaxPerKiB, p.NoMassErase = lEraseMaxPerKiB, true
	default:
		p.EraseMaxPerKiB, p.MassEraseMax = gEraseMaxPerKiB, gMassEraseMax
	}
	if family == "L0" || family == "L1" {
		p.UIDWords = [3]uint32{0, 4, 0x14}
	}
	return p
}

func pages(total, size uint32) []uint32 { return uniform(int(total/size), size) }

// f7s returns the F74x/F76x sector layout: four 32 KiB, one 128 KiB, then
// n of 256 KiB.
func f7s(n int) []uint32 {
	return append([]uint32{32 << 10, 32 << 10, 32 << 10, 32 << 10, 128 << 10}, uniform(n, 256<<10)...)
}

// r is a region from its first and its last-plus-one address.
func r(lo, hi uint32) Region { return Region{lo, hi - lo} }

// Common option-byte and system-memory ranges (dev_table.c; AN2606).
var (
	optF1  = r(0x1FFFF800, 0x1FFFF810)
	optF4  = r(0x1FFFC000, 0x1FFFC010)
	optF7  = r(0x1FFF0000, 0x1FFF0020)
	optG0  = r(0x1FFF7800, 0x1FFF7880)
	optG4  = r(0x1FFF7800, 0x1FFF7830)
	optL4  = r(0x1FFF7800, 0x1FFF7810)
	optL0  = r(0x1FF80000, 0x1FF80020)
	optL1  = r(0x1FF80000, 0x1FF800A0)
	optWB  = r(0x1FFF8000, 0x1FFF8080)
	sysF4  = r(0x1FFF0000, 0x1FFF7800)
	sysG   = r(0x1FFF0000, 0x1FFF7000)
	sysL0  = r(0x1FF00000, 0x1FF01000)
	sysL0b = r(0x1FF00000, 0x1FF02000)
	sysF7  = r(0x1FF00000, 0x1FF0EDC0)
)

const k = 1 << 10

// parts is the part table, by PID: the common families (F0, F1, F2, F3,
// F4, F7, G0, G4, H7, L0, L1, L4, WB). Values follow AN2606's "device-
// dependent bootloader parameters" as stm32flash 0.7's dev_table.c and
// stm32loader's devices.py carry them (PID, the RAM the bootloader leaves
// free, flash size and erase units, option bytes, system memory); flash
// sizes are the largest of each line, so that `stm32flash -r` and
// ReadMemory of the whole flash read the same bytes.
var parts = []Part{
	mk(0x440, "STM32F030x8/F05xxx", "F0", 0x20000800, 0x20002000, pages(64*k, k), optF1, r(0x1FFFEC00, 0x1FFFF800), sigF0),
	mk(0x444, "STM32F03xx4/6", "F0", 0x20000800, 0x20001000, pages(32*k, k), optF1, r(0x1FFFEC00, 0x1FFFF800), sigF0),
	mk(0x442, "STM32F030xC/F09xxx", "F0", 0x20001800, 0x20008000, pages(256*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),
	mk(0x445, "STM32F04xxx/F070x6", "F0", 0x20001800, 0x20001800, pages(32*k, k), optF1, r(0x1FFFC400, 0x1FFFF800), sigF0),
	mk(0x448, "STM32F070xB/F071xx/F72xx", "F0", 0x20001800, 0x20004000, pages(128*k, 2*k), optF1, r(0x1FFFC800, 0x1FFFF800), sigF0),

	mk(0x412, "STM32F10xxx Low-density", "F1", 0x20000200, 0x20002800, pages(32*k, k), optF1, r(0x1FFFF000, 0x1FFFF800), sigF1),
	mk(0x410, "STM32F10xxx Medium-density", "F1", 0x20000200, 0x20005000, pages(128*k, k), optF1, r(0x1FFFF000, 0x1FFFF800), sigF1),
	mk(0x414, "STM32F10xxx High-density", "F1", 0x20000200, 0x20010000, pages(512*k, 2*k), optF1, r(0x1FFFF000, 0x1FFFF800), sigF1),
	mk(0x420, "STM32F10xxx Medium-density VL", "F1", 0x20000200, 0x20002000, pages(128*k, k), optF1, r(0x1FFFF000, 0x1FFFF800), sigF1),
	mk(0x428, "STM32F10xxx High-density VL", "F1", 0x20000200, 0x20008000, pages(512*k, 2*k), optF1, r(0x1FFFF000, 0x1FFFF800), sigF1),
	mk(0x418, "STM32F105xx/F107xx", "F1", 0x20001000, 0x20010000, pages(256*k, 2*k), optF1, r(0x1FFFB000, 0x1FFFF800), sigF1),
	mk(0x430, "STM32F10xxx XL-density", "F1", 0x20000800, 0x20018000, pages(1024*k, 2*k), optF1, r(0x1FFFE000, 0x1FFFF800), sigF1),

	mk(0x411, "STM32F2xxxx", "F2", 0x20002000, 0x20020000, f2f4(7), optF4, sysF4, sigF2),

	mk(0x432, "STM32F373xx/F378xx", "F3", 0x20001400, 0x20008000, pages(256*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),
	mk(0x422, "STM32F302xB(C)/F303xB(C)/F358xx", "F3", 0x20001400, 0x2000A000, pages(256*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),
	mk(0x439, "STM32F301xx/F302x4(6/8)/F318xx", "F3", 0x20001800, 0x20004000, pages(64*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),
	mk(0x438, "STM32F303x4(6/8)/F334xx/F328xx", "F3", 0x20001800, 0x20003000, pages(64*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),
	mk(0x446, "STM32F302xD(E)/F303xD(E)/F398xx", "F3", 0x20001800, 0x20010000, pages(512*k, 2*k), optF1, r(0x1FFFD800, 0x1FFFF800), sigF0),

	mk(0x413, "STM32F40xxx/41xxx", "F4", 0x20003000, 0x20020000, f2f4(7), optF4, sysF4, sigF4),
	mk(0x419, "STM32F42xxx/43xxx", "F4", 0x20003000, 0x20030000, append(f2f4(7), f2f4(7)...), r(0x1FFEC000, 0x1FFFC010), sysF4, sigF4),
	mk(0x423, "STM32F401xB(C)", "F4", 0x20003000, 0x20010000, f2f4(1), optF4, sysF4, sigF4),
	mk(0x433, "STM32F401xD(E)", "F4", 0x20003000, 0x20018000, f2f4(3), optF4, sysF4, sigF4),
	mk(0x458, "STM32F410xx", "F4", 0x20003000, 0x20008000, f2f4(0), optF4, sysF4, sigF4),
	mk(0x431, "STM32F411xx", "F4", 0x20003000, 0x20020000, f2f4(3), optF4, sysF4, sigF4),
	mk(0x441, "STM32F412xx", "F4", 0x20003000, 0x20040000, f2f4(7), optF4, sysF4, sigF4),
	mk(0x421, "STM32F446xx", "F4", 0x20003000, 0x20020000, f2f4(3), optF4, sysF4, sigF4),
	mk(0x434, "STM32F469xx/479xx", "F4", 0x20003000, 0x20060000, append(f2f4(7), f2f4(7)...), r(0x1FFEC000, 0x1FFFC010), sysF4, sigF4),
	mk(0x463, "STM32F413xx/423xx", "F4", 0x20003000, 0x20050000, f2f4(11), optF4, sysF4, sigF4),

	mk(0x452, "STM32F72xxx/73xxx", "F7", 0x20004000, 0x20040000, f2f4(3), optF7, sysF7, sigF72),
	mk(0x449, "STM32F74xxx/75xxx", "F7", 0x20004000, 0x20050000, f7s(3), optF7, sysF7, sigF74),
	mk(0x451, "STM32F76xxx/77xxx", "F7", 0x20004000, 0x20080000, f7s(7), optF7, sysF7, sigF74),

	mk(0x466, "STM32G03xxx/04xxx", "G0", 0x20001000, 0x20002000, pages(64*k, 2*k), optG0, r(0x1FFF0000, 0x1FFF2000), sigG),
	mk(0x460, "STM32G07xxx/08xxx", "G0", 0x20002700, 0x20009000, pages(128*k, 2*k), optG0, sysG, sigG),
	mk(0x467, "STM32G0B0/B1/C1xx", "G0", 0x20004000, 0x20020000, pages(512*k, 2*k), optG0, sysG, sigG),
	mk(0x456, "STM32G05xxx/061xx", "G0", 0x20001000, 0x20004800, pages(64*k, 2*k), optG0, r(0x1FFF0000, 0x1FFF2000), sigG),

	mk(0x468, "STM32G431xx/441xx", "G4", 0x20004000, 0x20005800, pages(128*k, 2*k), optG4, sysG, sigG),
	mk(0x469, "STM32G47xxx/48xxx", "G4", 0x20004000, 0x20018000, pages(512*k, 2*k), optG4, sysG, sigG),
	mk(0x479, "STM32G491xx/A1xx", "G4", 0x20004000, 0x2001C000, pages(512*k, 2*k), optG4, sysG, sigG),

	mk(0x450, "STM32H74xxx/75xxx", "H7", 0x20004100, 0x20020000, pages(2048*k, 128*k), Region{}, r(0x1FF00000, 0x1FF1E800), sigH7),

	mk(0x457, "STM32L01xxx/02xxx", "L0", 0x20000800, 0x20000800, pages(16*k, 128), optL0, sysL0, sigL0),
	mk(0x425, "STM32L031xx/041xx", "L0", 0x20001000, 0x20002000, pages(32*k, 128), optL0, sysL0, sigL0),
	mk(0x417, "STM32L05xxx/06xxx", "L0", 0x20001000, 0x20002000, pages(64*k, 128), optL0, sysL0, sigL0),
	mk(0x447, "STM32L07xxx/08xxx", "L0", 0x20002000, 0x20005000, pages(192*k, 128), optL0, sysL0b, sigL0),

	mk(0x416, "STM32L1xxx6(8/B)", "L1", 0x20000800, 0x20004000, pages(128*k, 256), optL0, sysL0, sigL1a),
	mk(0x429, "STM32L1xxx6(8/B)A", "L1", 0x20001000, 0x20008000, pages(128*k, 256), optL0, sysL0, sigL1a),
	mk(0x427, "STM32L1xxxC", "L1", 0x20001000, 0x20008000, pages(256*k, 256), optL0, sysL0b, sigL1b),
	mk(0x436, "STM32L1xxxD", "L1", 0x20001000, 0x2000C000, pages(384*k, 256), optL1, sysL0b, sigL1b),
	mk(0x437, "STM32L1xxxE", "L1", 0x20001000, 0x20014000, pages(512*k, 256), optL1, sysL0b, sigL1b),

	mk(0x464, "STM32L412xx/422xx", "L4", 0x20003100, 0x20008000, pages(128*k, 2*k), optL4, sysG, sigG),
	mk(0x435, "STM32L43xxx/44xxx", "L4", 0x20003100, 0x2000C000, pages(256*k, 2*k), optL4, sysG, sigG),
	mk(0x462, "STM32L45xxx/46xxx", "L4", 0x20003100, 0x20020000, pages(512*k, 2*k), optL4, sysG, sigG),
	mk(0x415, "STM32L47xxx/48xxx", "L4", 0x20003100, 0x20018000, pages(1024*k, 2*k), optL4, sysG, sigG),
	mk(0x461, "STM32L496xx/4A6xx", "L4", 0x20003100, 0x20040000, pages(1024*k, 2*k), optL4, sysG, sigG),
	mk(0x470, "STM32L4Rxx/4Sxx", "L4", 0x20003200, 0x200A0000, pages(1024*k, 2*k), optL4, sysG, sigG),

	mk(0x494, "STM32WB10xx/15xx", "WB", 0x20005000, 0x20040000, pages(320*k, 2*k), optG0, sysG, sigG),
	mk(0x495, "STM32WB30xx/35xx/50xx/55xx", "WB", 0x20004000, 0x2000C000, pages(1024*k, 4*k), optWB, sysG, sigG),
}

// Parts returns the part table, ordered by PID.
func Parts() []Part {
	ps := make([]Part, len(parts))
	for i, p := range parts {
		p.Layout = append([]uint32(nil), p.Layout...)
		ps[i] = p
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].PID < ps[j].PID })
	return ps
}

// LookupPID returns the part whose GET_ID answer is pid.
func LookupPID(pid uint16) (Part, bool) {
	for _, p := range parts {
		if p.PID == pid {
			p.Layout = append([]uint32(nil), p.Layout...)
			return p, true
		}
	}
	return Part{}, false
}
