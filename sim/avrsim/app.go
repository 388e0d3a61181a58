package avrsim

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unbrick/unbrick/sim"
)

// DescOffset is where a demo application image carries its sim.AppDescriptor:
// after the interrupt vector table (104 bytes on the 328P, 228 on the 2560).
const DescOffset = 0x100

// jmp is the first word of the AVR JMP instruction (a 22-bit absolute
// address follows; below 128 KiB the high bits are zero).
const jmp = 0x940C

// ErrNoResetVector is an image whose first instruction is not a JMP.
var ErrNoResetVector = errors.New("reset vector is not a JMP instruction")

// AppImage returns a demo application image of size bytes for part
// ("atmega328p" or "atmega2560"): the part's interrupt vector table as JMP
// instructions (the reset vector to code right after the descriptor), the
// sim.AppDescriptor at DescOffset, then bytes derived from the version. size
// must be even, hold the descriptor and fit below optiboot.
func AppImage(part, version, target string, size int) ([]byte, error) {
	p, info, err := lookup(part)
	if err != nil {
		return nil, err
	}
	if size%2 != 0 || size > p.BootStart() {
		return nil, fmt.Errorf("avrsim: application of %d bytes for %s: must be even and at most %d bytes (optiboot starts at 0x%04X)", size, p.Name, p.BootStart(), p.BootStart())
	}
	vec := make([]byte, 4*info.vectors)
	entry := uint16((DescOffset + sim.DescriptorSize) / 2) // word address
	for i := range info.vectors {
		target := entry + 2 // __bad_interrupt
		if i == 0 {
			target = entry
		}
		binary.LittleEndian.PutUint16(vec[4*i:], jmp)
		binary.LittleEndian.PutUint16(vec[4*i+2:], target)
	}
	return sim.BuildApp(vec, DescOffset, size, version, target)
}

// checkApp checks the application below optiboot as the model's boot does.
func (m *Model) checkApp() (sim.AppDescriptor, error) {
	mem, err := m.flash.Read(0, m.part.BootStart())
	if err != nil {
		return sim.AppDescriptor{}, err
	}
	d, err := sim.ParseApp(mem, DescOffset)
	if err != nil {
		return d, err
	}
	if binary.LittleEndian.Uint16(mem) != jmp {
		return d, ErrNoResetVector
	}
	return d, nil
}

func (m *Model) runApp(s *sim.Session) {
	s.SetBaud(115200)
	d, err := m.checkApp()
	if err != nil {
		// A blank or broken application runs into optiboot at the top of
		// flash, which checks the reset flags again: no reset happens.
		sim.BootLoop(s, fmt.Sprintf("%s: %v", m.part.Name, err), m.opts.Reboot)
		return
	}
	sim.RunApp(s, sim.AppConsole{Desc: d, Board: m.opts.Board, ID: m.opts.ID, Baud: 115200, Reboot: m.opts.Reboot})
}
