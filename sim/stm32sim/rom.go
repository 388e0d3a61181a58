package stm32sim

import (
	"slices"

	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
)

// rom is one run of the system bootloader.
type rom struct {
	m *Model
	s *sim.Session
	// done is set when the run must end: the unit reset itself or jumped
	// to an application that has returned.
	done bool
}

// errHung ends a run whose HangAfter fault fired.
type errHung struct{}

func (errHung) Error() string { return "stm32sim: unit hung" }

// readFull reads len(p) bytes, counting them against the HangAfter fault.
// When the fault fires the ROM goes silent until the run ends.
func (r *rom) readFull(p []byte) error {
	for n := 0; n < len(p); {
		want := len(p) - n
		r.m.mu.Lock()
		if h := r.m.faults.HangAfter; h > 0 {
			want = min(want, max(h-r.m.rx, 1))
		}
		r.m.mu.Unlock()
		k, err := r.s.Read(p[n : n+want])
		n += k
		r.m.mu.Lock()
		r.m.rx += k
		hung := r.m.faults.HangAfter > 0 && r.m.rx >= r.m.faults.HangAfter
		if hung {
			r.m.faults.HangAfter = 0
			r.m.stats.Hangs++
		}
		r.m.mu.Unlock()
		if hung {
			<-r.s.Context().Done()
			return errHung{}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *rom) byte() (byte, error) {
	var b [1]byte
	err := r.readFull(b[:])
	return b[0], err
}

// reply sends b. A WrongAck fault replaces a leading ACK once.
func (r *rom) reply(b ...byte) error {
	if len(b) > 0 && b[0] == stm32.ACK {
		r.m.mu.Lock()
		if w := r.m.faults.WrongAck; w != 0 {
			r.m.faults.WrongAck = 0
			b = append([]byte{w}, b[1:]...)
		}
		r.m.mu.Unlock()
	}
	_, err := r.s.Write(b)
	return err
}

func (r *rom) ack() error { return r.reply(stm32.ACK) }

func (r *rom) nack() error {
	r.m.mu.Lock()
	r.m.stats.NACKs++
	r.m.mu.Unlock()
	return r.reply(stm32.NACK)
}

// dropInput discards what arrived while the unit was in reset.
func dropInput(s *sim.Session) {
	var drop [64]byte
	for {
		if n, _ := s.ReadTimeout(drop[:], 0); n == 0 {
			return
		}
	}
}

func (m *Model) runBootloader(s *sim.Session) {
	m.mu.Lock()
	m.stats.BootloaderRuns++
	m.mu.Unlock()
	s.SetBaud(0)                 // the ROM measures the host's rate on the first frame
	s.SetFraming(sim.Framing8E1) // AN3155 §2: 8 data bits, even parity, 1 stop bit
	if s.Wait(StartupDelay) != nil {
		return
	}
	dropInput(s)
	m.setListening(true)
	defer m.setListening(false)
	r := &rom{m: m, s: s}
	// Autobaud (AN3155 §2, "USART bootloader code sequence"): the ROM
	// times the first frame it sees as if it were 0x7F, sets its USART to
	// the rate that gives, and answers ACK at that rate. There is no second
	// chance until the next reset: a first frame that is not 0x7F (noise,
	// an application's leftovers, a host that sends before the ROM listens)
	// leaves it at a wrong rate, and every byte after is garbled both ways.
	b, err := r.byte()
	if err != nil {
		return
	}
	m.mu.Lock()
	if baud := measuredRate(s.HostBaud(), b); baud != 0 {
		s.SetBaud(baud)
		m.stats.AutobaudMisses++
	} else {
		m.stats.Syncs++
	}
	m.mu.Unlock()
	if r.ack() != nil {
		return
	}
	for !r.done {
		if r.command() != nil {
			return
		}
	}
}

// measuredRate returns the rate the ROM sets when the first frame it times
// is b, sent at host baud, or 0 when that is the host's rate. ST does not
// publish how the ROM times the frame; the model times it from the start
// bit's falling edge to the frame's last rising edge, which 0x7F at 8E1
// (0 1111111 0 1 1) has nine bit times in. A byte whose last rising edge is
// elsewhere (00 and FF: ten) gives a rate more than a UART's tolerance
// off; a byte whose edges fall where 0x7F's do is timed right.
func measuredRate(host int, b byte) int {
	bits := []byte{0}
	for i := range 8 {
		bits = append(bits, b>>i&1)
	}
	bits = append(bits, sim.Framing8E1.ParityBit(b), 1)
	last := 0
	for i := 1; i < len(bits); i++ {
		if bits[i-1] == 0 && bits[i] == 1 {
			last = i
		}
	}
	if last == 9 {
		return 0
	}
	return host * 9 / last
}

// readProtected is what RDP level 1 makes the ROM refuse.
func readProtected(cmd byte) bool {
	switch cmd {
	case stm32.CmdRead, stm32.CmdWrite, stm32.CmdErase, stm32.CmdExtendedErase, stm32.CmdGo,
		stm32.CmdWriteProtect, stm32.CmdWriteUnprotect, stm32.CmdReadoutProtect, stm32.CmdGetChecksum:
		return true
	}
	return false
}

// command serves one command. It returns an error when the run ends.
func (r *rom) command() error {
	var c [2]byte
	if err := r.readFull(c[:]); err != nil {
		return err
	}
	cmd := c[0]
	if c[1] != ^cmd || !slices.Contains(r.m.v.cmds, cmd) {
		// A wrong complement (a second 0x7F after sync is one), or a
		// command this bootloader does not have.
		return r.nack()
	}
	r.m.mu.Lock()
	r.m.stats.Commands++
	rdp := r.m.rdp
	r.m.mu.Unlock()
	if rdp && readProtected(cmd) {
		return r.nack()
	}
	switch cmd {
	case stm32.CmdGet:
		return r.reply(append([]byte{stm32.ACK}, stm32.EncodeGet(r.m.v.version, r.m.v.cmds)...)...)
	case stm32.CmdGetVersion:
		return r.reply(append([]byte{stm32.ACK}, stm32.EncodeVersion(r.m.v.version, 0, 0)...)...)
	case stm32.CmdGetID:
		return r.reply(append([]byte{stm32.ACK}, stm32.EncodeID(r.m.v.pid)...)...)
	case stm32.CmdRead:
		return r.read()
	case stm32.CmdWrite:
		return r.write()
	case stm32.CmdErase:
		return r.erase()
	case stm32.CmdExtendedErase:
		return r.extendedErase()
	case stm32.CmdGo:
		return r.goCmd()
	case stm32.CmdGetChecksum:
		return r.checksum()
	case stm32.CmdWriteProtect:
		return r.writeProtect()
	case stm32.CmdWriteUnprotect:
		return r.twoAcks(func() {
			clear(r.m.wrp)
		})
	case stm32.CmdReadoutProtect:
		return r.twoAcks(func() { r.m.rdp = true })
	case stm32.CmdReadoutUnprotect:
		if err := r.ack(); err != nil {
			return err
		}
		if err := r.s.Busy(r.m.timing.MassErase); err != nil {
			return err
		}
		r.m.flash.EraseAll()
		r.m.mu.Lock()
		r.m.rdp = false
		r.m.stats.MassErases++
		r.m.stats.UnitsErased += r.m.part.Units()
		r.m.mu.Unlock()
		if err := r.ack(); err != nil {
			return err
		}
		r.reset()
		return nil
	}
	return r.nack()
}

// twoAcks serves an option-byte command: ACK, change, ACK, system reset.
func (r *rom) twoAcks(change func()) error {
	if err := r.ack(); err != nil {
		return err
	}
	r.m.mu.Lock()
	change()
	r.m.mu.Unlock()
	if err := r.ack(); err != nil {
		return err
	}
	r.reset()
	return nil
}

// reset ends the run with a system reset, as the ROM does after changing
// option bytes.
func (r *rom) reset() {
	r.s.Reset()
	r.done = true
}

// counted reads the rest of a frame that began with its count n: n+1
// bytes and a checksum byte that XORs with n and them to zero (AN3155:
// WRITE_MEMORY's data, ERASE's pages, WRITE_PROTECT's sectors). sum
// reports whether the checksum holds.
func (r *rom) counted(n byte) (data []byte, sum bool, err error) {
	buf := make([]byte, int(n)+2)
	if err := r.readFull(buf); err != nil {
		return nil, false, err
	}
	x := n
	for _, b := range buf {
		x ^= b
	}
	return buf[:len(buf)-1], x == 0, nil
}

// address reads an address frame and checks its checksum.
func (r *rom) address() (uint32, bool, error) {
	var a [5]byte
	if err := r.readFull(a[:]); err != nil {
		return 0, false, err
	}
	addr, ok := stm32.DecodeAddress(a)
	return addr, ok, nil
}

func (r *rom) read() error {
	if err := r.ack(); err != nil {
		return err
	}
	addr, ok, err := r.address()
	if err != nil {
		return err
	}
	if a, _ := r.m.areaOf(addr); !ok || a == noArea {
		return r.nack()
	}
	if refused, _ := r.m.readRefused(addr, 1); refused {
		return r.nack()
	}
	if err := r.ack(); err != nil {
		return err
	}
	var l [2]byte
	if err := r.readFull(l[:]); err != nil {
		return err
	}
	if l[1] != ^l[0] {
		return r.nack()
	}
	n := int(l[0]) + 1
	if _, refused := r.m.readRefused(addr, n); refused {
		return r.nack()
	}
	data, ok := r.m.read(addr, n)
	if !ok {
		return r.nack() // the read runs past the end of the memory
	}
	return r.reply(append([]byte{stm32.ACK}, data...)...)
}

// writable reports whether [addr, addr+n) may be written: flash, or SRAM
// past what the bootloader uses.
func (r *rom) writable(addr uint32, n int) (area, bool) {
	p := r.m.part
	switch {
	case p.Flash().Contains(addr, n):
		return flashArea, true
	case p.RAM.Contains(addr, n) && addr >= p.RAM.Start+p.BootloaderRAM:
		return ramArea, true
	}
	return noArea, false
}

func (r *rom) write() error {
	if err := r.ack(); err != nil {
		return err
	}
	addr, ok, err := r.address()
	if err != nil {
		return err
	}
	if _, in := r.writable(addr, 1); !ok || !in || addr%4 != 0 {
		return r.nack()
	}
	if err := r.ack(); err != nil {
		return err
	}
	n, err := r.byte()
	if err != nil {
		return err
	}
	data, sum, err := r.counted(n)
	if err != nil {
		return err
	}
	a, in := r.writable(addr, len(data))
	if !sum || len(data)%4 != 0 || !in {
		return r.nack()
	}
	if a == ramArea {
		r.m.mu.Lock()
		copy(r.m.ram[addr-r.m.part.RAM.Start:], data)
		r.m.mu.Unlock()
		return r.ack()
	}
	r.m.mu.Lock()
	fail := r.m.faults.NACKWrites > 0
	if fail {
		r.m.faults.NACKWrites--
	}
	protected := r.protectedLocked(addr, len(data))
	r.m.mu.Unlock()
	if fail || protected {
		return r.nack()
	}
	if err := r.s.Busy(r.m.timing.ProgramTime(len(data))); err != nil {
		return err
	}
	clean, err := r.m.flash.Program(addr, data)
	if err != nil {
		return r.nack()
	}
	r.m.mu.Lock()
	r.m.stats.BlocksWritten++
	if !clean {
		r.m.stats.DirtyWrites++
	}
	r.m.mu.Unlock()
	return r.ack()
}

// protectedLocked reports whether write protection covers any erase unit
// of [addr, addr+n). The caller holds m.mu.
func (r *rom) protectedLocked(addr uint32, n int) bool {
	units, err := r.m.part.UnitsIn(addr, uint32(n))
	if err != nil {
		return false
	}
	for _, u := range units {
		if r.m.wrp[u/r.m.v.wrpGroup] {
			return true
		}
	}
	return false
}

// eraseUnits erases the given units after checking them all, spending the
// modelled time. It returns false when a unit is out of range or protected.
func (r *rom) eraseUnits(units []int) (bool, error) {
	r.m.mu.Lock()
	for _, u := range units {
		if u < 0 || u >= r.m.part.Units() || r.m.wrp[u/r.m.v.wrpGroup] {
			r.m.mu.Unlock()
			return false, nil
		}
	}
	r.m.mu.Unlock()
	for _, u := range units {
		reg, _ := r.m.part.Unit(u)
		if err := r.s.Busy(r.m.timing.EraseTime(reg.Size)); err != nil {
			return false, err
		}
		if err := r.m.flash.EraseUnit(u); err != nil {
			return false, nil
		}
	}
	r.m.mu.Lock()
	r.m.stats.UnitsErased += len(units)
	r.m.mu.Unlock()
	return true, nil
}

// massErase erases everything unless write protection forbids it or the
// part has no mass erase (Options.NoMassErase).
func (r *rom) massErase() error {
	r.m.mu.Lock()
	protected := len(r.m.wrp) > 0
	r.m.mu.Unlock()
	if protected || r.m.opts.NoMassErase {
		return r.nack()
	}
	if err := r.s.Busy(r.m.timing.MassErase); err != nil {
		return err
	}
	r.m.flash.EraseAll()
	r.m.mu.Lock()
	r.m.stats.MassErases++
	r.m.stats.UnitsErased += r.m.part.Units()
	r.m.mu.Unlock()
	return r.ack()
}

func (r *rom) erase() error {
	if err := r.ack(); err != nil {
		return err
	}
	n, err := r.byte()
	if err != nil {
		return err
	}
	if n == stm32.GlobalErase {
		sum, err := r.byte()
		if err != nil {
			return err
		}
		if sum != 0x00 {
			return r.nack()
		}
		return r.massErase()
	}
	pages, sum, err := r.counted(n)
	if err != nil {
		return err
	}
	if !sum {
		return r.nack()
	}
	units := make([]int, len(pages))
	for i, p := range pages {
		units[i] = int(p)
	}
	ok, err := r.eraseUnits(units)
	if err != nil {
		return err
	}
	if !ok {
		return r.nack()
	}
	return r.ack()
}

func (r *rom) extendedErase() error {
	if err := r.ack(); err != nil {
		return err
	}
	var nb [2]byte
	if err := r.readFull(nb[:]); err != nil {
		return err
	}
	n := int(nb[0])<<8 | int(nb[1])
	if n >= 0xFFF0 {
		sum, err := r.byte()
		if err != nil {
			return err
		}
		if sum != nb[0]^nb[1] || n != stm32.MassErase {
			return r.nack() // a bad checksum, or a bank erase on a single-bank part
		}
		return r.massErase()
	}
	buf := make([]byte, 2*(n+1)+1)
	if err := r.readFull(buf); err != nil {
		return err
	}
	x := nb[0] ^ nb[1]
	for _, b := range buf[:len(buf)-1] {
		x ^= b
	}
	if x != buf[len(buf)-1] {
		return r.nack()
	}
	units := make([]int, n+1)
	for i := range units {
		units[i] = int(buf[2*i])<<8 | int(buf[2*i+1])
	}
	ok, err := r.eraseUnits(units)
	if err != nil {
		return err
	}
	if !ok {
		return r.nack()
	}
	return r.ack()
}

func (r *rom) goCmd() error {
	if err := r.ack(); err != nil {
		return err
	}
	addr, ok, err := r.address()
	if err != nil {
		return err
	}
	a, _ := r.m.areaOf(addr)
	if !ok || (a != flashArea && a != ramArea) {
		return r.nack()
	}
	if err := r.ack(); err != nil {
		return err
	}
	r.done = true
	if a == ramArea {
		r.m.runRAM(r.s, addr)
		return nil
	}
	r.m.runImage(r.s, addr)
	return nil
}

func (r *rom) writeProtect() error {
	if err := r.ack(); err != nil {
		return err
	}
	n, err := r.byte()
	if err != nil {
		return err
	}
	codes, sum, err := r.counted(n)
	if err != nil {
		return err
	}
	groups := (r.m.part.Units() + r.m.v.wrpGroup - 1) / r.m.v.wrpGroup
	if !sum || slices.ContainsFunc(codes, func(c byte) bool { return int(c) >= groups }) {
		return r.nack()
	}
	r.m.mu.Lock()
	for _, c := range codes {
		r.m.wrp[int(c)] = true
	}
	r.m.mu.Unlock()
	if err := r.ack(); err != nil {
		return err
	}
	r.reset()
	return nil
}

// checksum serves GET_CHECKSUM as stm32flash drives it (stm32.c,
// stm32_crc_memory): ACK, the address (4-aligned, in flash) and ACK, the
// length in bytes (a multiple of 4, inside flash) and ACK, then ACK once
// computed, the CRC most significant byte first, and its XOR.
func (r *rom) checksum() error {
	if err := r.ack(); err != nil {
		return err
	}
	addr, ok, err := r.address()
	if err != nil {
		return err
	}
	if !ok || addr%4 != 0 || !r.m.part.Flash().Contains(addr, 1) {
		return r.nack()
	}
	if err := r.ack(); err != nil {
		return err
	}
	n, ok, err := r.address() // the length has the address's shape
	if err != nil {
		return err
	}
	if !ok || n == 0 || n%4 != 0 || !r.m.part.Flash().Contains(addr, int(n)) {
		return r.nack()
	}
	if err := r.ack(); err != nil {
		return err
	}
	data, err := r.m.flash.Read(addr, int(n))
	if err != nil {
		return r.nack()
	}
	c := stm32.CRC32(data)
	b := []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
	return r.reply(stm32.ACK, b[0], b[1], b[2], b[3], b[0]^b[1]^b[2]^b[3])
}
