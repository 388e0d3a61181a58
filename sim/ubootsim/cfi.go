package ubootsim

import (
	"strings"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// CFI parallel NOR flash (Options.CFIFlash): 32 MiB of 128 KiB sectors,
// the geometry real U-Boot reports for a bank of QEMU's virt flash, mapped
// at the i.MX6's EIM chip select 0.
const (
	CFIBase   = 0x08000000
	CFISize   = 32 << 20
	CFISector = 128 << 10
)

func newCFI() *sim.Flash { return sim.NewFlash(CFIBase, sim.Uniform(CFISize/CFISector, CFISector)) }

// CFI returns the CFI NOR flash, nil without Options.CFIFlash.
func (m *Model) CFI() *sim.Flash { return m.cfi }

// inCFI reports whether [addr, addr+n) lies in the CFI flash.
func (u *uboot) inCFI(addr, n uint64) bool {
	return u.m.cfi != nil && addr >= CFIBase && addr+n <= CFIBase+CFISize && addr+n >= addr
}

// flashRange reads "start end" or "start +len" as cmd/flash.c does: the
// sectors from start's to the one holding end (or start+len-1). ok is false
// for a range outside the flash.
func (u *uboot) flashRange(args []string) (first, last int, start, end uint64, ok bool) {
	if len(args) != 2 || u.m.cfi == nil {
		return 0, 0, 0, 0, false
	}
	s, good := hex(args[0])
	if !good {
		return 0, 0, 0, 0, false
	}
	var e uint64
	if l, plus := strings.CutPrefix(args[1], "+"); plus {
		n, good := hex(l)
		if !good || n == 0 {
			return 0, 0, 0, 0, false
		}
		e = s + n - 1
	} else if e, good = hex(args[1]); !good {
		return 0, 0, 0, 0, false
	}
	if e < s || !u.inCFI(s, e-s+1) {
		return 0, 0, 0, 0, false
	}
	return int((s - CFIBase) / CFISector), int((e - CFIBase) / CFISector), s, e, true
}

// protect is cmd/flash.c's "protect on|off": software protection per
// sector, as the CFI driver keeps it ("Protected N sectors").
func (u *uboot) protect(args []string) int {
	if len(args) != 4 || (args[1] != "on" && args[1] != "off") {
		return usage
	}
	first, last, _, _, good := u.flashRange(args[2:])
	if !good {
		return usage
	}
	for i := first; i <= last; i++ {
		u.protected[i] = args[1] == "on"
	}
	if args[1] == "on" {
		u.out("Protected %d sectors\n", last-first+1)
	} else {
		u.out("Un-Protected %d sectors\n", last-first+1)
	}
	return ok
}

// erase is cmd/flash.c's erase with the CFI driver's flash_erase output,
// as real U-Boot 2023.01 prints it: the start (and an explicit end) must
// be on sector boundaries; protected sectors are left with a warning, and
// the count printed is the whole range's.
func (u *uboot) erase(args []string) int {
	if len(args) != 3 {
		return usage
	}
	first, last, s, e, good := u.flashRange(args[1:])
	if !good {
		return usage
	}
	if (s-CFIBase)%CFISector != 0 {
		u.out("Error: start address not on sector boundary\n")
		return fail
	}
	if !strings.HasPrefix(args[2], "+") && (e+1-CFIBase)%CFISector != 0 {
		u.out("Error: end address not on sector boundary\n")
		return fail
	}
	prot := 0
	for i := first; i <= last; i++ {
		if u.protected[i] {
			prot++
		}
	}
	if prot > 0 {
		u.out("- Warning: %d protected sectors will not be erased!\n", prot)
	} else {
		u.out("\n")
	}
	for i := first; i <= last; i++ {
		if !u.protected[i] {
			u.m.cfi.EraseUnit(i)
			u.busy(sectorEraseTime)
			u.out(".")
		}
	}
	u.out(" done\nErased %d sectors\n", last-first+1)
	return ok
}

// sectorEraseTime is a typical 128 KiB sector erase.
const sectorEraseTime = 400 * time.Millisecond

// cp is cmd/mem.c's do_mem_cp: RAM to RAM (or flash to RAM) silently, RAM
// to the CFI flash through the driver ("Copy to Flash... done", "Can't
// write to protected Flash sectors", "Flash not Erased": the real texts).
func (u *uboot) cp(args []string) int {
	if len(args) != 4 {
		return usage
	}
	v, good := hexArgs(args[1:])
	if !good {
		return usage
	}
	n := v[2] * uint64(width(args[0]))
	data := u.readRAM(v[0], int(n))
	if !u.inCFI(v[1], n) {
		u.writeRAM(v[1], data)
		return ok
	}
	u.out("Copy to Flash... ")
	for i := (v[1] - CFIBase) / CFISector; i <= (v[1]+n-1-CFIBase)/CFISector; i++ {
		if u.protected[i] {
			u.out("Can't write to protected Flash sectors\n")
			return fail
		}
	}
	old, _ := u.m.cfi.Read(uint32(v[1]), int(n))
	for i := range old {
		if data[i]&^old[i] != 0 {
			u.out("Flash not Erased\n")
			return fail
		}
	}
	u.m.cfi.Program(uint32(v[1]), data)
	u.out("done\n")
	return ok
}
