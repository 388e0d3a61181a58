package espsim

import (
	"crypto/md5"
	"encoding/binary"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
)

// stub is esptool's flasher stub as the model runs it once esptool has
// loaded it into RAM (MEM_BEGIN/DATA/END) and jumped to it: it greets the
// host with OHAI, sends two status bytes on every chip, answers SYNC with
// value 0, erases as it writes (no erase at FLASH_BEGIN, so no ESP8266
// erase bug), takes FLASH_BEGIN sizes in bytes and 16 KiB blocks, inflates
// on the ESP8266 too, sends MD5s as 16 raw bytes, and adds ERASE_FLASH,
// ERASE_REGION, READ_FLASH (streamed, acknowledged) and RUN_USER_CODE.
type stub struct {
	r *rom

	writing   bool
	deflate   bool
	offset    uint32
	size      uint32 // bytes the write covers (uncompressed)
	blocks    uint32
	blockSize uint32
	seq       uint32
	pos       uint32 // next address to program
	// Erase-ahead state, as esptool's stub_write_flash.c keeps it: the
	// next sector to erase and how many the write still needs.
	nextErase      uint32
	remainingErase uint32
	// lastErr is the error of the last block's programming, which the
	// stub reports at the next FLASH_DATA or at FLASH_END: it answers a
	// block before it writes it.
	lastErr byte
	inf     *inflater
}

func newStub(r *rom) *stub { return &stub{r: r} }

// greet sends OHAI, the stub's sign of life.
func (st *stub) greet() error {
	_, err := st.r.s.Write(esprom.AppendSLIP(nil, []byte("OHAI")))
	return err
}

func (st *stub) ok(op byte, value uint32, data []byte) error {
	return st.r.reply(op, value, data, 0, 0)
}

func (st *stub) fail(op, code byte) error { return st.r.reply(op, 0, nil, 1, code) }

func (st *stub) stopInflater() {
	if st.inf != nil {
		st.inf.stop()
		st.inf = nil
	}
}

func (st *stub) handle(pkt []byte) error {
	r := st.r
	req, err := esprom.DecodeRequest(pkt)
	if err != nil {
		if len(pkt) >= 2 && pkt[0] == 0x00 {
			return st.fail(pkt[1], esprom.CodeStubBadDataLen)
		}
		return nil
	}
	r.m.count(func(s *Stats) { s.Commands++ })
	d := req.Data
	w := words(d)
	switch req.Op {
	case esprom.OpSync:
		for range 8 {
			if err := st.ok(req.Op, 0, nil); err != nil {
				return err
			}
		}
		r.m.count(func(s *Stats) { s.Syncs++ })
		return nil
	case esprom.OpReadReg:
		if len(d) != 4 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		return st.ok(req.Op, r.m.reg(w[0], r.baud), nil)
	case esprom.OpWriteReg:
		if len(d) == 0 || len(d)%16 != 0 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		for i := 0; i+3 < len(w); i += 4 {
			r.m.writeReg(w[i], w[i+1], w[i+2])
		}
		return st.ok(req.Op, 0, nil)
	case esprom.OpSPIAttach:
		// The stub takes one word (stub_flasher.c: verify_data_len(command,
		// 4)); the ROM two (esptool's flash_spi_attach adds "is legacy").
		if len(d) != 4 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		return st.ok(req.Op, 0, nil)
	case esprom.OpSPISetParams:
		if len(d) != 24 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		return st.ok(req.Op, 0, nil)
	case esprom.OpChangeBaudrate:
		if len(d) != 8 || w[0] < 300 || w[0] > 5000000 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		pinBaud(r.s)
		if err := st.ok(req.Op, 0, nil); err != nil {
			return err
		}
		if err := switchBaud(r.s, int(w[0])); err != nil {
			return err
		}
		r.baud = int(w[0])
		return nil
	case esprom.OpFlashBegin, esprom.OpFlashDeflBegin:
		if len(d) != 16 && len(d) != 20 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		if w[2] == 0 || w[2] > 0x10000 {
			return st.fail(req.Op, esprom.CodeStubBadBlockSize)
		}
		if uint64(w[3])+uint64(w[0]) > uint64(r.m.flash.Size()) {
			return st.fail(req.Op, esprom.CodeStubFailedSPIOp)
		}
		st.stopInflater()
		st.writing, st.deflate = true, req.Op == esprom.OpFlashDeflBegin
		st.size, st.blocks, st.blockSize, st.offset = w[0], w[1], w[2], w[3]
		st.seq, st.pos = 0, w[3]
		st.nextErase, st.remainingErase = w[3]/esprom.SectorSize, (w[0]+esprom.SectorSize-1)/esprom.SectorSize
		st.lastErr = 0
		return st.ok(req.Op, 0, nil)
	case esprom.OpFlashData, esprom.OpFlashDeflData:
		return st.data(req)
	case esprom.OpFlashEnd, esprom.OpFlashDeflEnd:
		if len(d) != 4 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		if !st.writing {
			return st.fail(req.Op, esprom.CodeStubNotInFlashMode)
		}
		st.writing = false
		st.stopInflater()
		if st.lastErr != 0 { // handle_flash_end returns the last block's error
			return st.fail(req.Op, st.lastErr)
		}
		if err := st.ok(req.Op, 0, nil); err != nil {
			return err
		}
		if w[0] == 0 {
			// Reboot: a software reset back into the ROM, which enters
			// download mode again while GPIO0 is low (esptool's "soft
			// reset" to leave the stub).
			st.r.done = true
			st.r.s.Reset()
		}
		return nil
	case esprom.OpSPIFlashMD5:
		if len(d) != 16 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		b, err := r.m.flash.Read(w[0], int(w[1]))
		if err != nil {
			return st.fail(req.Op, esprom.CodeStubFailedSPIOp)
		}
		if r.s.Busy(r.m.timing.MD5Time(w[1])) != nil {
			return errHung
		}
		r.m.count(func(s *Stats) { s.MD5s++ })
		sum := md5.Sum(b)
		return st.ok(req.Op, 0, sum[:])
	case esprom.OpEraseFlash:
		n := uint32(r.m.flash.Size() / esprom.SectorSize)
		r.m.flash.EraseAll()
		r.m.count(func(s *Stats) { s.SectorsErased += int(n) })
		if r.s.Busy(r.m.timing.EraseTime(0, n)) != nil {
			return errHung
		}
		return st.ok(req.Op, 0, nil)
	case esprom.OpEraseRegion:
		if len(d) != 8 || w[0]%esprom.SectorSize != 0 || w[1]%esprom.SectorSize != 0 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		k, err := r.m.flash.EraseRange(regionOf(w[0], w[1]))
		if err != nil {
			return st.fail(req.Op, esprom.CodeStubFailedSPIOp)
		}
		r.m.count(func(s *Stats) { s.SectorsErased += k })
		if r.s.Busy(r.m.timing.EraseTime(w[0]/esprom.SectorSize, uint32(k))) != nil {
			return errHung
		}
		return st.ok(req.Op, 0, nil)
	case esprom.OpReadFlash:
		if len(d) != 16 {
			return st.fail(req.Op, esprom.CodeStubBadDataLen)
		}
		return st.readFlash(w[0], w[1], w[2], w[3])
	case esprom.OpRunUserCode:
		// It works on the ESP8266 only: there the stub returns to the
		// ROM's boot (esptool's flasher_stub/stub_flasher.c, "if cmd_loop
		// returns, it's due to ESP_RUN_USER_CODE"). The ESP32's stub
		// answers nothing and stays (esp-flasher-stub: "This command does
		// not send response. TODO: Try to implement WDT reset"), and
		// esptool's soft_reset refuses it: "only supported on ESP8266".
		if r.m.v.chip.Magic != esprom.ESP8266.Magic {
			return nil
		}
		st.runUserCode()
		return nil
	}
	return st.fail(req.Op, esprom.CodeStubInvalidCommand)
}

func (st *stub) runUserCode() {
	st.r.m.runImage(st.r.s)
	st.r.done = true
}

// data takes a FLASH_DATA or FLASH_DEFL_DATA block. Like esptool's stub
// (stub_flasher.c: "ACK DATA commands immediately, then process them a few
// lines down, allowing next command to buffer") it checks the block,
// answers, and only then inflates, erases and programs it, while the host
// sends the next block; an error in that work is answered at the next
// block or at FLASH_END (get_flash_error, handle_flash_end).
func (st *stub) data(req esprom.Request) error {
	d := req.Data
	if !st.writing || st.deflate != (req.Op == esprom.OpFlashDeflData) {
		return st.fail(req.Op, esprom.CodeStubNotInFlashMode)
	}
	if len(d) < 16 || int(binary.LittleEndian.Uint32(d)) != len(d)-16 {
		return st.fail(req.Op, esprom.CodeStubBadDataLen)
	}
	block := d[16:]
	st.r.m.mu.Lock()
	if st.r.m.faults.GarbleBlocks > 0 && len(block) > 0 {
		st.r.m.faults.GarbleBlocks--
		block = append([]byte(nil), block...)
		block[len(block)/2] ^= 0x10
	}
	st.r.m.mu.Unlock()
	if esprom.Checksum(block) != req.Checksum {
		return st.fail(req.Op, esprom.CodeStubBadChecksum)
	}
	if st.lastErr != 0 {
		return st.fail(req.Op, st.lastErr)
	}
	block = append([]byte(nil), block...) // the packet buffer is reused
	if err := st.ok(req.Op, 0, nil); err != nil {
		return err
	}
	st.seq++
	st.r.m.count(func(s *Stats) { s.BlocksWritten++ })
	out := block
	if st.deflate {
		if st.inf == nil {
			st.inf = newInflater()
		}
		var err error
		if out, err = st.inf.feed(block); err != nil {
			st.stopInflater()
			st.lastErr = esprom.CodeStubInflateError
			return nil
		}
	}
	// The stub writes no further than the size it was given: the
	// padding of the last uncompressed block is dropped.
	left := st.offset + st.size - st.pos
	if uint32(len(out)) > left {
		if st.deflate {
			st.lastErr = esprom.CodeStubTooMuchData
			return nil
		}
		out = out[:left]
	}
	if len(out) > 0 {
		if code := st.program(st.pos, out); code != 0 {
			st.lastErr = code
			return nil
		}
		st.pos += uint32(len(out))
	}
	return nil
}

// program erases ahead as far as the write reaches (a 64 KiB block at a
// time where the write still needs more than a block from a block
// boundary, else a sector: handle_flash_data in esptool's
// stub_write_flash.c), then programs b and reads it back.
func (st *stub) program(addr uint32, b []byte) byte {
	r := st.r
	last := (addr + uint32(len(b)) + esprom.SectorSize - 1) / esprom.SectorSize
	for st.nextErase < last {
		n, t := uint32(1), r.m.timing.SectorErase
		if st.nextErase%16 == 0 && st.remainingErase > 16 {
			n, t = 16, r.m.timing.BlockErase
		}
		for i := st.nextErase; i < st.nextErase+n; i++ {
			if r.m.flash.EraseUnit(int(i)) != nil {
				return esprom.CodeStubFailedSPIOp
			}
		}
		r.m.count(func(s *Stats) { s.SectorsErased += int(n) })
		if r.s.Busy(t) != nil {
			return esprom.CodeStubFailedSPIOp
		}
		st.nextErase += n
		st.remainingErase -= min(n, st.remainingErase)
	}
	r.limit = uint32(r.m.flash.Size())
	if code := r.program(addr, b); code != 0 {
		return esprom.CodeStubFailedSPIOp
	}
	return 0
}

// readFlash streams length bytes from offset in packets, at most inFlight
// unacknowledged, each acknowledged by the host with the total it has
// received (a SLIP frame of four bytes), then the MD5 of all of it.
func (st *stub) readFlash(offset, length, packet, inFlight uint32) error {
	r := st.r
	data, err := r.m.flash.Read(offset, int(length))
	if err != nil || packet == 0 || inFlight == 0 {
		return st.fail(esprom.OpReadFlash, esprom.CodeStubBadDataLen)
	}
	if err := st.ok(esprom.OpReadFlash, 0, nil); err != nil {
		return err
	}
	var sent, acked uint32
	ack := func() error {
		pkt, err := r.nextPacket()
		if err != nil {
			return err
		}
		if len(pkt) == 4 {
			acked = max(acked, binary.LittleEndian.Uint32(pkt))
		}
		return nil
	}
	for sent < length {
		for sent-acked >= packet*inFlight {
			if err := ack(); err != nil {
				return err
			}
		}
		n := min(packet, length-sent)
		if _, err := r.s.Write(esprom.AppendSLIP(nil, data[sent:sent+n])); err != nil {
			return err
		}
		sent += n
	}
	for acked < length {
		if err := ack(); err != nil {
			return err
		}
	}
	sum := md5.Sum(data)
	_, err = r.s.Write(esprom.AppendSLIP(nil, sum[:]))
	return err
}

// regionOf returns [a, a+n) as a flash region.
func regionOf(a, n uint32) sim.Region { return sim.Region{Start: a, Size: n} }
