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
	PID  uint16
	Name string // as stm32flash names it: "STM32F10xxx Medium-density"
	// FlashBase is the start of the main flash (0x08000000 on every STM32).
	FlashBase uint32
	// Layout lists the sizes of the erase units (pages on the F1, sectors
	// on the F2 and F4) from FlashBase upward.
	Layout []uint32
	// UIDAddr is where the 96-bit unique ID is; FlashSizeAddr the 16-bit
	// flash-size register (KiB).
	UIDAddr       uint32
	FlashSizeAddr uint32
	RAM           Region // SRAM the bootloader can read and write
	// BootloaderRAM is how many bytes at the start of RAM the bootloader
	// uses itself (AN2606); writes there are refused.
	BootloaderRAM uint32
	SystemMemory  Region // the ROM holding the bootloader
	OptionBytes   Region
	// EraseMaxPerKiB bounds the time an erase unit takes, per KiB of its
	// size, and MassEraseMax a mass erase: the datasheet maxima, used to
	// size deadlines.
	EraseMaxPerKiB time.Duration
	MassEraseMax   time.Duration
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
// characteristics" tables: STM32F103x8/B (DS5319) page erase and mass erase
// at most 40 ms; STM32F405/407 (DS8626) at x8 parallelism, the slowest, a
// 16 KiB sector at most 800 ms, a 128 KiB one 4 s, a mass erase 32 s.
const (
	f1EraseMaxPerKiB = 40 * time.Millisecond
	f1MassEraseMax   = 40 * time.Millisecond
	f4EraseMaxPerKiB = 50 * time.Millisecond
	f4MassEraseMax   = 32 * time.Second
)

// F1 and F2/F4 memory maps (RM0008, RM0090; reserved RAM from AN2606 and
// stm32flash's device table).
var (
	f1SysMem = Region{0x1FFFF000, 0x800}
	f1Opt    = Region{0x1FFFF800, 16}
	f4SysMem = Region{0x1FFF0000, 0x7800}
	f4Opt    = Region{0x1FFFC000, 16}
)

const (
	f1UID       = 0x1FFFF7E8
	f1FlashSize = 0x1FFFF7E0
	f4UID       = 0x1FFF7A10
	f4FlashSize = 0x1FFF7A22
	flashBase   = 0x08000000
	sramBase    = 0x20000000
)

func f1(pid uint16, name string, layout []uint32, ramKiB, reserved uint32) Part {
	return Part{PID: pid, Name: name, FlashBase: flashBase, Layout: layout, UIDAddr: f1UID, FlashSizeAddr: f1FlashSize,
		RAM: Region{sramBase, ramKiB << 10}, BootloaderRAM: reserved, SystemMemory: f1SysMem, OptionBytes: f1Opt,
		EraseMaxPerKiB: f1EraseMaxPerKiB, MassEraseMax: f1MassEraseMax}
}

func f4(pid uint16, name string, layout []uint32, ramKiB uint32) Part {
	return Part{PID: pid, Name: name, FlashBase: flashBase, Layout: layout, UIDAddr: f4UID, FlashSizeAddr: f4FlashSize,
		RAM: Region{sramBase, ramKiB << 10}, BootloaderRAM: 0x3000, SystemMemory: f4SysMem, OptionBytes: f4Opt,
		EraseMaxPerKiB: f4EraseMaxPerKiB, MassEraseMax: f4MassEraseMax}
}

// parts is the part table, by PID. Flash sizes are the largest of each line,
// as stm32flash's device table has them, so that `stm32flash -r` and
// ReadMemory of the whole flash read the same bytes.
var parts = []Part{
	f1(0x412, "STM32F10xxx Low-density", uniform(32, 1<<10), 10, 0x200),
	f1(0x410, "STM32F10xxx Medium-density", uniform(128, 1<<10), 20, 0x200),
	f1(0x414, "STM32F10xxx High-density", uniform(256, 2<<10), 64, 0x200),
	func() Part {
		p := f4(0x411, "STM32F2xxxx", f2f4(7), 128)
		p.BootloaderRAM = 0x2000
		return p
	}(),
	f4(0x413, "STM32F40xxx/41xxx", f2f4(7), 128),
	f4(0x423, "STM32F401xB(C)", f2f4(1), 64),
	f4(0x433, "STM32F401xD(E)", f2f4(3), 96),
	f4(0x431, "STM32F411xx", f2f4(3), 128),
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
