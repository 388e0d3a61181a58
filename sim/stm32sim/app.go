package stm32sim

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// DescOffset is where an application image carries its sim.AppDescriptor:
// right after the vector table (0x130 bytes on the F103, 0x188 on the F407).
const DescOffset = 0x200

// AppImage returns a valid application image of size bytes for the named
// part, to be written at 0x08000000: a Cortex-M vector table (initial stack
// pointer at the top of SRAM, reset vector to the code after the
// descriptor with the Thumb bit set, the other vectors to a default
// handler), the sim.AppDescriptor at DescOffset, then bytes derived from the
// version.
func AppImage(partName, version, target string, size int) ([]byte, error) {
	v, p, _, err := lookup(partName)
	if err != nil {
		return nil, err
	}
	if size < DescOffset+sim.DescriptorSize+8 || size > int(p.FlashSize()) {
		return nil, fmt.Errorf("stm32sim: application of %d bytes for %s: must be %d to %d bytes", size, partName, DescOffset+sim.DescriptorSize+8, p.FlashSize())
	}
	vec := make([]byte, 4*v.vectors)
	entry := p.FlashBase + DescOffset + sim.DescriptorSize
	binary.LittleEndian.PutUint32(vec[0:], uint32(p.RAM.End()))
	binary.LittleEndian.PutUint32(vec[4:], entry|1)
	for i := 2; i < v.vectors; i++ {
		binary.LittleEndian.PutUint32(vec[4*i:], (entry+4)|1)
	}
	return sim.BuildApp(vec, DescOffset, size, version, target)
}

// checkApp checks the image whose vector table is at addr in flash, as the
// core (vector fetch) and the sim boot code (descriptor, checksum) do.
func (m *Model) checkApp(addr uint32) (sim.AppDescriptor, error) {
	p := m.part
	end := uint32(p.Flash().End())
	mem, err := m.flash.Read(addr, int(end-addr))
	if err != nil || len(mem) < 8 {
		return sim.AppDescriptor{}, fmt.Errorf("%w at 0x%08X: it runs past the end of flash", ErrBadVectorTable, addr)
	}
	sp := binary.LittleEndian.Uint32(mem[0:])
	pc := binary.LittleEndian.Uint32(mem[4:])
	switch {
	case sp == 0xFFFFFFFF && pc == 0xFFFFFFFF:
		return sim.AppDescriptor{}, fmt.Errorf("%w at 0x%08X", ErrErased, addr)
	case sp <= p.RAM.Start || uint64(sp) > p.RAM.End() || sp%4 != 0:
		return sim.AppDescriptor{}, fmt.Errorf("%w at 0x%08X: initial SP 0x%08X is outside SRAM %v", ErrBadVectorTable, addr, sp, p.RAM)
	case pc&1 == 0:
		return sim.AppDescriptor{}, fmt.Errorf("%w at 0x%08X: reset vector 0x%08X lacks the Thumb bit", ErrBadVectorTable, addr, pc)
	case pc&^1 < addr+8 || pc&^1 >= end:
		return sim.AppDescriptor{}, fmt.Errorf("%w at 0x%08X: reset vector 0x%08X is outside the image in flash", ErrBadVectorTable, addr, pc)
	}
	d, err := sim.ParseApp(mem, DescOffset)
	if err != nil {
		return d, fmt.Errorf("application at 0x%08X: %w", addr, err)
	}
	return d, nil
}

// runImage starts the image whose vector table is at addr in flash, or
// boot-loops saying what is wrong with it.
func (m *Model) runImage(s *sim.Session, addr uint32) {
	// The application sets its USART up itself: the demo firmware's
	// console runs 115200 8N1, as most firmware does, not the ROM's 8E1.
	s.SetBaud(115200)
	s.SetFraming(sim.Framing8N1)
	d, err := m.checkApp(addr)
	m.mu.Lock()
	if err != nil {
		m.stats.BootFailures++
	} else {
		m.stats.AppRuns++
	}
	m.mu.Unlock()
	if err != nil {
		// A real core would hard-fault in silence; the sim's boot code says
		// why, so that a console log can be diagnosed, and resets.
		sim.BootLoop(s, fmt.Sprintf("%s: boot failed: %v", m.name, err), m.opts.Reboot)
		return
	}
	sim.RunApp(s, sim.AppConsole{Desc: d, Board: m.opts.Board, ID: m.Serial(), Baud: 115200, Reboot: m.opts.Reboot})
}

// aircrReset is the word stm32flash's reset stub writes to AIRCR (VECTKEY |
// SYSRESETREQ), little-endian as it sits in the stub.
var aircrReset = []byte{0x04, 0x00, 0xFA, 0x05}

// runRAM runs code GO sent into SRAM. The model knows one program: a stub
// that requests a system reset through AIRCR, as `stm32flash -R` loads. Any
// other code locks the core up until the next reset.
func (m *Model) runRAM(s *sim.Session, addr uint32) {
	n := min(64, int(uint64(m.part.RAM.End())-uint64(addr)))
	code, _ := m.RAM(addr, n)
	for i := 0; i+4 <= len(code); i += 4 {
		if string(code[i:i+4]) == string(aircrReset) {
			_ = s.Wait(time.Millisecond)
			s.Reset()
			return
		}
	}
	<-s.Context().Done()
}
