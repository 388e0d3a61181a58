package sim

import (
	"fmt"
	"sort"
	"sync"
)

// Flash is NOR flash memory as the simulated parts have it: erased bytes read
// 0xFF, programming can only clear bits (the stored byte becomes old AND new),
// and only erasing a whole page or sector sets them again. Writing over data
// that was not erased therefore corrupts it, as it does on silicon.
//
// Addresses are absolute (Base is added by the caller's address space); the
// layout is a list of erase units from Base upward. Flash is safe for
// concurrent use.
type Flash struct {
	Base uint32

	mu      sync.Mutex
	data    []byte
	units   []Region // erase units in address order, covering data exactly
	erases  []int    // erase count per unit
	dirty   int      // number of programs that tried to set a bit
	written int64    // bytes programmed since creation
	faults  *FlashFaults
}

// slow delays an erase by the injected slow-erase fault, if any.
func (f *Flash) slow() {
	f.mu.Lock()
	ff := f.faults
	f.mu.Unlock()
	if ff != nil {
		ff.erasing()
	}
}

// Region is an address range [Start, Start+Size).
type Region struct {
	Start uint32
	Size  uint32
}

// End returns the first address after r.
func (r Region) End() uint32 { return r.Start + r.Size }

// Contains reports whether addr lies in r.
func (r Region) Contains(addr uint32) bool { return addr >= r.Start && addr-r.Start < r.Size }

// Overlaps reports whether r and o share an address.
func (r Region) Overlaps(o Region) bool { return r.Start < o.End() && o.Start < r.End() }

func (r Region) String() string { return fmt.Sprintf("0x%08X-0x%08X", r.Start, r.End()-1) }

// Uniform returns a layout of n erase units of size bytes each.
func Uniform(n int, size uint32) []uint32 {
	l := make([]uint32, n)
	for i := range l {
		l[i] = size
	}
	return l
}

// NewFlash returns erased flash at base whose erase units have the given
// sizes, in address order (Uniform(64, 1024) for 64 pages of 1 KiB; STM32F4
// sectors are 4x16K, 64K, then 128K).
func NewFlash(base uint32, layout []uint32) *Flash {
	f := &Flash{Base: base}
	addr := base
	for _, sz := range layout {
		f.units = append(f.units, Region{addr, sz})
		addr += sz
	}
	f.data = make([]byte, addr-base)
	for i := range f.data {
		f.data[i] = 0xFF
	}
	f.erases = make([]int, len(f.units))
	return f
}

// Size returns the flash size in bytes.
func (f *Flash) Size() int { return len(f.data) }

// Region returns the whole flash as a region.
func (f *Flash) Region() Region { return Region{f.Base, uint32(len(f.data))} }

// Units returns the number of erase units (pages or sectors).
func (f *Flash) Units() int { return len(f.units) }

// Unit returns erase unit i.
func (f *Flash) Unit(i int) (Region, bool) {
	if i < 0 || i >= len(f.units) {
		return Region{}, false
	}
	return f.units[i], true
}

// UnitAt returns the index of the erase unit holding addr.
func (f *Flash) UnitAt(addr uint32) (int, bool) {
	i := sort.Search(len(f.units), func(i int) bool { return f.units[i].End() > addr })
	if i == len(f.units) || !f.units[i].Contains(addr) {
		return 0, false
	}
	return i, true
}

// ErrRange is returned for an access outside the flash.
type ErrRange struct {
	Addr uint32
	Len  int
	All  Region
}

func (e *ErrRange) Error() string {
	return fmt.Sprintf("flash access 0x%08X+%d outside %v", e.Addr, e.Len, e.All)
}

func (f *Flash) off(addr uint32, n int) (int, error) {
	if addr < f.Base || uint64(addr-f.Base)+uint64(n) > uint64(len(f.data)) {
		return 0, &ErrRange{addr, n, f.Region()}
	}
	return int(addr - f.Base), nil
}

// Read copies n bytes at addr.
func (f *Flash) Read(addr uint32, n int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.off(addr, n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), f.data[o:o+n]...), nil
}

// Program writes b at addr with flash semantics: each stored byte becomes
// old AND new. It reports whether any bit would have had to go from 0 to 1,
// that is whether the target was not erased and the result differs from b.
func (f *Flash) Program(addr uint32, b []byte) (clean bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.off(addr, len(b))
	if err != nil {
		return false, err
	}
	if ff := f.faults; ff != nil {
		var cut bool
		if b, cut = ff.program(addr, b); cut && ff.cut != nil {
			ff.cut()
		}
	}
	clean = true
	for i, v := range b {
		old := f.data[o+i]
		if v&^old != 0 {
			clean = false
		}
		f.data[o+i] = old & v
	}
	if !clean {
		f.dirty++
	}
	f.written += int64(len(b))
	return clean, nil
}

// EraseUnit erases erase unit i (sets every byte to 0xFF).
func (f *Flash) EraseUnit(i int) error {
	f.slow()
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= len(f.units) {
		return fmt.Errorf("flash has no page or sector %d (it has %d)", i, len(f.units))
	}
	f.eraseLocked(i)
	return nil
}

func (f *Flash) eraseLocked(i int) {
	u := f.units[i]
	o := int(u.Start - f.Base)
	for j := o; j < o+int(u.Size); j++ {
		f.data[j] = 0xFF
	}
	f.erases[i]++
}

// EraseRange erases every unit that overlaps r and returns how many.
func (f *Flash) EraseRange(r Region) (int, error) {
	f.slow()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.off(r.Start, int(r.Size)); err != nil {
		return 0, err
	}
	n := 0
	for i, u := range f.units {
		if u.Overlaps(r) {
			f.eraseLocked(i)
			n++
		}
	}
	return n, nil
}

// EraseAll erases the whole flash (a mass erase).
func (f *Flash) EraseAll() {
	f.slow()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.units {
		f.eraseLocked(i)
	}
}

// Load stores b at addr as a factory programmer would, whatever was there
// before, without counting erases. Use it to set a unit's starting contents.
func (f *Flash) Load(addr uint32, b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.off(addr, len(b))
	if err != nil {
		return err
	}
	copy(f.data[o:], b)
	return nil
}

// Corrupt flips bits in [addr, addr+n) without any flash semantics, to model
// a write interrupted by a power cut or a worn cell.
func (f *Flash) Corrupt(addr uint32, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.off(addr, n)
	if err != nil {
		return err
	}
	for i := o; i < o+n; i++ {
		f.data[i] ^= 0xA5
	}
	return nil
}

// Snapshot returns a copy of the whole flash.
func (f *Flash) Snapshot() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

// Stats reports how often each unit was erased, how many programs hit bits
// that were not erased, and how many bytes were programmed.
func (f *Flash) Stats() (erases []int, dirtyPrograms int, programmed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.erases...), f.dirty, f.written
}
