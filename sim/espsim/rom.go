package espsim

import (
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
)

// rom is one run of the ROM's download mode.
type rom struct {
	m *Model
	s *sim.Session

	dec      esprom.SLIPDecoder
	attached bool
	// flashSize is the flash size the ROM believes in: what SPI_SET_PARAMS
	// last said, else ROMFlashSize on the ESP32. Its flash routines refuse
	// to go past it, whatever the chip holds.
	flashSize uint32
	baud      int // the rate the ROM measured or was told; for UART_CLKDIV

	// The write in progress after FLASH_BEGIN or FLASH_DEFL_BEGIN.
	writing   bool
	deflate   bool
	offset    uint32
	blocks    uint32
	blockSize uint32
	seq       uint32
	limit     uint32 // end of the erased region
	pos       uint32 // next address to program (deflate)
	inf       *inflater

	mem     bool // MEM_BEGIN seen
	out     []byte
	buf     []byte
	pending []byte // received bytes not yet decoded
	stub    *stub  // the flasher stub, once esptool has started it
	// done is set when the run must end: the unit jumped to code.
	done bool
}

func (r *rom) run() {
	defer r.stopInflater()
	if r.m.printROM(r.s, r.m.v.bootLine(true, r.s.Cause)) != nil {
		return
	}
	if r.s.Wait(StartupDelay) != nil {
		return
	}
	r.s.SetBaud(0) // autobaud: follow the host
	r.baud = 115200
	r.flashSize = uint32(r.m.flash.Size())
	r.m.setAttached(!r.m.v.chip.Attach) // the ESP8266 ROM attaches the flash itself
	if r.m.v.chip.Attach {
		r.flashSize = ROMFlashSize
	}
	for !r.done {
		pkt, err := r.nextPacket()
		if err != nil {
			return
		}
		if r.stub != nil {
			err = r.stub.handle(pkt)
		} else {
			err = r.handle(pkt)
		}
		if err != nil {
			return
		}
	}
}

// errHung ends a run whose HangAfter fault fired.
var errHung = errors.New("espsim: unit hung")

// nextPacket returns the next SLIP packet the host sends, dropping bytes
// outside packets and malformed packets. It is valid until the next call.
func (r *rom) nextPacket() ([]byte, error) {
	for {
		for len(r.pending) > 0 {
			b := r.pending[0]
			r.pending = r.pending[1:]
			if r.countByte() {
				<-r.s.Context().Done()
				return nil, errHung
			}
			if pkt, err := r.dec.Feed(b); err == nil && pkt != nil {
				return pkt, nil
			}
		}
		if r.buf == nil {
			r.buf = make([]byte, 4096)
		}
		n, err := r.s.Read(r.buf)
		if err != nil {
			return nil, err
		}
		r.pending = r.buf[:n]
	}
}

// countByte counts a received byte against the HangAfter fault and reports
// whether the ROM must go silent.
func (r *rom) countByte() bool {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.m.faults.HangAfter <= 0 {
		return false
	}
	r.m.rx++
	if r.m.rx < r.m.faults.HangAfter {
		return false
	}
	r.m.faults.HangAfter = 0
	r.m.stats.Hangs++
	return true
}

// reply sends one response.
func (r *rom) reply(op byte, value uint32, data []byte, status, code byte) error {
	if status != 0 {
		r.m.count(func(st *Stats) { st.Errors++ })
	}
	statusLen := r.m.v.chip.StatusLen
	if r.stub != nil {
		statusLen = 2 // the flasher stub sends two on every chip
	}
	pkt := esprom.AppendResponse(nil, op, value, data, status, code, statusLen)
	r.out = esprom.AppendSLIP(r.out[:0], pkt)
	r.m.mu.Lock()
	if r.m.faults.MangleAnswers > 0 {
		r.m.faults.MangleAnswers--
		r.out = append(r.out[:3:3], append([]byte{esprom.SLIPEsc, 0x00}, r.out[3:]...)...)
	}
	r.m.mu.Unlock()
	_, err := r.s.Write(r.out)
	return err
}

func (r *rom) ok(op byte, value uint32, data []byte) error { return r.reply(op, value, data, 0, 0) }

func (r *rom) fail(op byte, code byte) error { return r.reply(op, 0, nil, 1, code) }

// has reports whether this ROM offers op.
func (r *rom) has(op byte) bool {
	c := r.m.v.chip
	switch op {
	case esprom.OpSync, esprom.OpReadReg, esprom.OpWriteReg, esprom.OpFlashBegin, esprom.OpFlashData, esprom.OpFlashEnd,
		esprom.OpMemBegin, esprom.OpMemData, esprom.OpMemEnd:
		return true
	case esprom.OpSPIAttach, esprom.OpSPISetParams:
		return c.Attach
	case esprom.OpChangeBaudrate:
		return c.ChangeBaud
	case esprom.OpFlashDeflBegin, esprom.OpFlashDeflData, esprom.OpFlashDeflEnd:
		return c.Deflate
	case esprom.OpSPIFlashMD5:
		return c.MD5
	case esprom.OpReadFlashSlow:
		return c.ReadFlash
	}
	return false
}

func words(d []byte) []uint32 {
	w := make([]uint32, len(d)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(d[4*i:])
	}
	return w
}

func (r *rom) handle(pkt []byte) error {
	req, err := esprom.DecodeRequest(pkt)
	if err != nil {
		if len(pkt) >= 2 && pkt[0] == 0x00 {
			return r.fail(pkt[1], esprom.CodeInvalidMessage)
		}
		return nil // not a request: ignored
	}
	r.m.count(func(st *Stats) { st.Commands++ })
	if !r.has(req.Op) {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	d := req.Data
	switch req.Op {
	case esprom.OpSync:
		if !bytes.Equal(d, esprom.SyncPayload) {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		r.m.mu.Lock()
		miss := r.m.faults.MissSyncs > 0
		if miss {
			r.m.faults.MissSyncs--
		}
		r.m.mu.Unlock()
		if miss {
			return nil // the autobaud has not locked: no answer
		}
		r.m.count(func(st *Stats) { st.Syncs++ })
		for range 8 {
			if err := r.ok(req.Op, esprom.SyncValue, nil); err != nil {
				return err
			}
		}
		return nil
	case esprom.OpReadReg:
		if len(d) != 4 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		return r.ok(req.Op, r.m.reg(binary.LittleEndian.Uint32(d), r.baud), nil)
	case esprom.OpWriteReg:
		if len(d) == 0 || len(d)%16 != 0 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		w := words(d)
		for i := 0; i+3 < len(w); i += 4 {
			r.m.writeReg(w[i], w[i+1], w[i+2])
		}
		return r.ok(req.Op, 0, nil)
	case esprom.OpSPIAttach:
		if len(d) != 8 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		// The argument says where the flash is: 0 the default SPI pins, 1
		// HSPI, else the pins packed as esptool's --spi-connection packs
		// them. The ROM attaches what it is told; a flash on other pins
		// stays out of reach (esptool's flash_spi_attach; the stub passes
		// ets_efuse_get_spiconfig() for the same reason).
		r.attached = binary.LittleEndian.Uint32(d) == r.m.opts.SPIPins.Packed()
		r.m.setAttached(r.attached)
		return r.ok(req.Op, 0, nil)
	case esprom.OpSPISetParams:
		if len(d) != 24 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		// fl_id, total size, block, sector, page, status mask, as esptool's
		// flash_set_parameters sends them: the ROM's flash routines take
		// the total size as the bound of every erase, write and read.
		w := words(d)
		if w[1] == 0 || w[3] != esprom.SectorSize {
			return r.fail(req.Op, esprom.CodeFailedToAct)
		}
		r.flashSize = w[1]
		return r.ok(req.Op, 0, nil)
	case esprom.OpChangeBaudrate:
		if len(d) != 8 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		baud := int(binary.LittleEndian.Uint32(d))
		if baud < 300 || baud > 5000000 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		// The ROM computes the divider from its own crystal estimate
		// (see Options.ROMCrystal): the UART lands at the rate asked for
		// scaled by the nominal crystal over that estimate.
		baud = int(uint64(baud) * 40000000 / uint64(r.m.romCrystal()))
		// The answer goes out at the old rate, then the UART switches.
		pinBaud(r.s)
		if err := r.ok(req.Op, 0, nil); err != nil {
			return err
		}
		if err := switchBaud(r.s, baud); err != nil {
			return err
		}
		r.baud = baud
		return nil
	case esprom.OpFlashBegin, esprom.OpFlashDeflBegin:
		return r.begin(req)
	case esprom.OpFlashData:
		return r.data(req)
	case esprom.OpFlashDeflData:
		return r.deflData(req)
	case esprom.OpFlashEnd, esprom.OpFlashDeflEnd:
		return r.end(req)
	case esprom.OpSPIFlashMD5:
		return r.md5(req)
	case esprom.OpReadFlashSlow:
		return r.readSlow(req)
	case esprom.OpMemBegin:
		if len(d) != 16 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		r.mem = true
		return r.ok(req.Op, 0, nil)
	case esprom.OpMemData:
		if !r.mem || len(d) < 16 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		if esprom.Checksum(d[16:]) != req.Checksum&0xFF {
			return r.fail(req.Op, esprom.CodeBadCRC)
		}
		return r.ok(req.Op, 0, nil)
	case esprom.OpMemEnd:
		if !r.mem || len(d) != 8 {
			return r.fail(req.Op, esprom.CodeInvalidMessage)
		}
		if err := r.ok(req.Op, 0, nil); err != nil {
			return err
		}
		r.mem = false
		if binary.LittleEndian.Uint32(d) != 0 { // "do not execute": stay
			return nil
		}
		// The model knows one program sent to RAM: esptool's flasher stub.
		// It greets the host with OHAI and takes over the line.
		// It attaches the flash on the pins the eFuse names and sets the
		// size to 16 MiB before it greets (stub_main in esptool's
		// flasher_stub/stub_flasher.c: spi_flash_attach with
		// ets_efuse_get_spiconfig(), SPIParamCfg with FLASH_MAX_SIZE).
		r.stub = newStub(r)
		r.m.setAttached(true)
		return r.stub.greet()
	}
	return r.fail(req.Op, esprom.CodeInvalidMessage)
}

// begin erases the region and starts a write.
func (r *rom) begin(req esprom.Request) error {
	d := req.Data
	if len(d) != 16 { // the ESP32 and ESP8266 ROMs take no encryption word
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	if r.m.v.chip.Attach && !r.attached {
		// The ESP32 ROM has not configured the SPI flash before SPI_ATTACH.
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	w := words(d)
	size, blocks, blockSize, offset := w[0], w[1], w[2], w[3]
	if blockSize == 0 || blockSize > 0x4000 || offset%esprom.SectorSize != 0 {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	first := offset / esprom.SectorSize
	n := (size + esprom.SectorSize - 1) / esprom.SectorSize
	if r.m.v.chip.EraseBug {
		n = esprom.ESP8266Erased(offset, size)
	}
	// The ROM's erase refuses to pass the size it believes in (2 MiB on
	// the ESP32 until SPI_SET_PARAMS), then the chip's end.
	total := min(uint32(r.m.flash.Size()), r.flashSize) / esprom.SectorSize
	if first > total || n > total-first {
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	for i := first; i < first+n; i++ {
		r.m.flash.EraseUnit(int(i))
	}
	r.m.count(func(st *Stats) { st.SectorsErased += int(n) })
	if r.s.Busy(r.m.timing.EraseTime(first, n)) != nil {
		return sim.ErrHalted
	}
	r.stopInflater()
	r.writing, r.deflate = true, req.Op == esprom.OpFlashDeflBegin
	r.offset, r.blocks, r.blockSize, r.seq = offset, blocks, blockSize, 0
	r.limit, r.pos = (first+n)*esprom.SectorSize, offset
	return r.ok(req.Op, 0, nil)
}

// block checks a data request and returns its block, garbled if a fault
// says so.
func (r *rom) block(req esprom.Request, deflate bool) ([]byte, byte) {
	d := req.Data
	if !r.writing || r.deflate != deflate || len(d) < 16 {
		return nil, esprom.CodeInvalidMessage
	}
	w := words(d[:16])
	block := d[16:]
	if int(w[0]) != len(block) || w[1] != r.seq || r.seq >= r.blocks {
		return nil, esprom.CodeInvalidMessage
	}
	r.m.mu.Lock()
	if r.m.faults.GarbleBlocks > 0 && len(block) > 0 {
		r.m.faults.GarbleBlocks--
		block = append([]byte(nil), block...)
		block[len(block)/2] ^= 0x10
	}
	r.m.mu.Unlock()
	if esprom.Checksum(block) != req.Checksum&0xFF || req.Checksum > 0xFF {
		return nil, esprom.CodeBadCRC
	}
	return block, 0
}

// program writes b at addr and reads it back, as the ROM does.
func (r *rom) program(addr uint32, b []byte) byte {
	if uint64(addr)+uint64(len(b)) > uint64(r.limit) {
		return esprom.CodeFailedToAct
	}
	r.m.flash.Program(addr, b)
	if r.s.Busy(r.m.timing.ProgramTime(len(b))) != nil {
		return esprom.CodeFailedToAct
	}
	r.m.mu.Lock()
	worn := r.m.faults.FailPrograms > 0
	if worn {
		r.m.faults.FailPrograms--
	}
	r.m.stats.BytesWritten += len(b)
	r.m.mu.Unlock()
	if worn {
		r.m.flash.Corrupt(addr, 1)
	}
	back, err := r.m.flash.Read(addr, len(b))
	if err != nil || !bytes.Equal(back, b) {
		return esprom.CodeFlashWrite
	}
	return 0
}

func (r *rom) data(req esprom.Request) error {
	block, code := r.block(req, false)
	if code != 0 {
		return r.fail(req.Op, code)
	}
	if uint32(len(block)) != r.blockSize {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	addr := r.offset + r.seq*r.blockSize
	if code := r.program(addr, block); code != 0 {
		return r.fail(req.Op, code)
	}
	r.seq++
	r.m.count(func(st *Stats) { st.BlocksWritten++ })
	return r.ok(req.Op, 0, nil)
}

func (r *rom) deflData(req esprom.Request) error {
	block, code := r.block(req, true)
	if code != 0 {
		return r.fail(req.Op, code)
	}
	if r.inf == nil {
		r.inf = newInflater()
	}
	out, err := r.inf.feed(block)
	if err != nil {
		r.stopInflater()
		r.writing = false
		return r.fail(req.Op, esprom.CodeDeflate)
	}
	if len(out) > 0 {
		if code := r.program(r.pos, out); code != 0 {
			return r.fail(req.Op, code)
		}
		r.pos += uint32(len(out))
	}
	r.seq++
	r.m.count(func(st *Stats) { st.BlocksWritten++ })
	return r.ok(req.Op, 0, nil)
}

func (r *rom) end(req esprom.Request) error {
	if len(req.Data) != 4 || !r.writing {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	r.writing = false
	r.stopInflater()
	if err := r.ok(req.Op, 0, nil); err != nil {
		return err
	}
	r.done = true
	if binary.LittleEndian.Uint32(req.Data) == 0 {
		// Reboot: a software reset, after which the strap decides again.
		r.s.Reset()
		return nil
	}
	// Run user code: the ROM jumps into the image in flash.
	r.m.runImage(r.s)
	return nil
}

func (r *rom) md5(req esprom.Request) error {
	if len(req.Data) != 16 {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	if r.m.v.chip.Attach && !r.attached {
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	w := words(req.Data)
	if !r.within(w[0], w[1]) {
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	b, err := r.m.flash.Read(w[0], int(w[1]))
	if err != nil {
		return r.fail(req.Op, esprom.CodeFlashRead)
	}
	if r.s.Busy(r.m.timing.MD5Time(w[1])) != nil {
		return sim.ErrHalted
	}
	r.m.count(func(st *Stats) { st.MD5s++ })
	sum := md5.Sum(b)
	return r.ok(req.Op, 0, []byte(hex.EncodeToString(sum[:])))
}

func (r *rom) readSlow(req esprom.Request) error {
	if len(req.Data) != 8 {
		return r.fail(req.Op, esprom.CodeInvalidMessage)
	}
	if r.m.v.chip.Attach && !r.attached {
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	w := words(req.Data)
	if w[1] > esprom.ReadBlock {
		return r.fail(req.Op, esprom.CodeReadLength)
	}
	if !r.within(w[0], w[1]) {
		return r.fail(req.Op, esprom.CodeFailedToAct)
	}
	b, err := r.m.flash.Read(w[0], int(w[1]))
	if err != nil {
		return r.fail(req.Op, esprom.CodeFlashRead)
	}
	out := make([]byte, esprom.ReadBlock) // always 64 bytes, whatever was asked
	copy(out, b)
	return r.ok(req.Op, 0, out)
}

// within reports whether [addr, addr+n) lies inside the flash size the
// ROM believes in.
func (r *rom) within(addr, n uint32) bool {
	return uint64(addr)+uint64(n) <= uint64(r.flashSize)
}

func (r *rom) stopInflater() {
	if r.inf != nil {
		r.inf.stop()
		r.inf = nil
	}
}

// inflater inflates a zlib stream that arrives block by block, as the
// ROM's tinfl does: each block yields what can be decoded so far.
type inflater struct {
	in    chan []byte
	state chan error // nil: starved (all input used); io.EOF: stream ended; else corrupt
	quit  chan struct{}
	out   []byte
	ended bool
}

func newInflater() *inflater {
	f := &inflater{in: make(chan []byte), state: make(chan error), quit: make(chan struct{})}
	go f.loop()
	return f
}

// chanReader hands the inflater the blocks fed to it; when they are used
// up it reports itself starved and waits for the next.
type chanReader struct {
	f   *inflater
	cur []byte
}

func (c *chanReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		select {
		case c.f.state <- nil:
		case <-c.f.quit:
			return 0, io.ErrClosedPipe
		}
		select {
		case b := <-c.f.in:
			c.cur = b
		case <-c.f.quit:
			return 0, io.ErrClosedPipe
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

func (f *inflater) loop() {
	cr := &chanReader{f: f}
	// Wait for the first block before the zlib header is read.
	select {
	case b := <-f.in:
		cr.cur = b
	case <-f.quit:
		return
	}
	zr, err := zlib.NewReader(cr)
	buf := make([]byte, 4096)
	for err == nil {
		var n int
		n, err = zr.Read(buf)
		f.out = append(f.out, buf[:n]...)
	}
	if err == io.EOF {
		err = zr.Close()
		if err == nil {
			err = io.EOF
		}
	}
	select {
	case f.state <- err:
	case <-f.quit:
	}
}

// feed gives the inflater a block and returns the output it yields.
func (f *inflater) feed(b []byte) ([]byte, error) {
	if f.ended {
		if len(b) == 0 {
			return nil, nil
		}
		return nil, io.ErrUnexpectedEOF // data after the end of the stream
	}
	f.in <- b
	err := <-f.state
	out := f.out
	f.out = nil
	switch err {
	case nil:
		return out, nil
	case io.EOF:
		f.ended = true
		return out, nil
	}
	f.ended = true
	return out, err
}

func (f *inflater) stop() { close(f.quit) }

// Baud switch timing: esptool's flasher stub answers CHANGE_BAUDRATE at the
// old rate, waits 10 ms, sets the UART's divider and waits 1 ms more
// (esptool flasher_stub/stub_io.c, stub_io_set_baudrate). Espressif does not
// publish the ROM's own timing; the model gives the ROM the stub's, which is
// what esptool's 50 ms pause after the command (loader.py change_baud: "get
// rid of crap sent during baud rate change") allows for. Bytes a host sends
// at the new rate before the switch reach the UART at the old one, garbled.
const (
	baudSwitchDelay  = 10 * time.Millisecond
	baudSwitchSettle = time.Millisecond
)

// pinBaud holds the UART at the rate the host speaks now (the rate the
// ROM measured, or was last told): the model's autobaud follows the host,
// the silicon's divider does not move until it is set.
func pinBaud(s *sim.Session) { s.SetBaud(s.HostBaud()) }

// switchBaud moves the unit's UART to baud the way the stub does, after
// its answer has gone out.
func switchBaud(s *sim.Session, baud int) error {
	if err := s.Busy(baudSwitchDelay); err != nil {
		return err
	}
	s.SetBaud(baud)
	return s.Busy(baudSwitchSettle)
}
