package avrsim

import (
	"errors"
	"time"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
)

// The Arduino Mega 2560's stock bootloader, stk500boot.c from Arduino's
// bootloaders/stk500v2 (Debian arduino-core-avr), as the model runs it
// with Options.Wiring. Every behaviour below follows that file; the
// differential test holds it against the real one on simavr.

// Timings of stk500boot.c at 16 MHz.
const (
	// WiringFirstByte is how long it waits for a first byte after a reset
	// before it starts the application (boot_timeout 20000 with
	// BLINK_LED_WHILE_WAITING, "should be about 1 second").
	WiringFirstByte = time.Second
	// WiringSilence is how long it waits for a byte inside a message
	// before it starts the application, if the word at 0 is not blank
	// (recchar_timeout: MAX_TIME_COUNT = F_CPU>>1 polling loops).
	WiringSilence = 3 * time.Second
)

// STK500v2 parameters stk500boot.c answers (CONFIG_PARAM_*).
var wiringParams = map[byte]byte{0x80: 0, 0x81: 0, 0x90: 0x0F, 0x91: 2, 0x92: 0x0A}

var errLeave = errors.New("avrsim: leave the bootloader")

type wiring struct {
	m       *Model
	s       *sim.Session
	buf     [512]byte
	r, w    int
	first   bool
	address uint32 // byte address (LOAD_ADDRESS word << 1)
	erase   uint32 // eraseAddress: the next page PROGRAM_FLASH erases
	out     []byte
}

func (m *Model) runWiring(s *sim.Session) {
	s.SetBaud(m.opts.Baud)
	wr := &wiring{m: m, s: s, first: true}
	err := wr.loop()
	if errors.Is(err, errWatchdog) || errors.Is(err, errLeave) {
		// It jumps to 0 (no reset): the application, or, on a blank chip,
		// the erased flash up into the bootloader again.
		m.mu.Lock()
		m.stats.AppRuns++
		m.mu.Unlock()
		m.runApp(s)
	}
}

// getch waits for a byte: WiringFirstByte for the first after a reset,
// then WiringSilence, after which it starts the application if one is
// there (the word at 0 is not 0xFFFF) and otherwise goes on waiting.
func (wr *wiring) getch() (byte, error) {
	for wr.r == wr.w {
		d := WiringSilence
		if wr.first {
			d = WiringFirstByte
		}
		n, err := wr.s.ReadTimeout(wr.buf[:], d)
		if errors.Is(err, sim.ErrReadTimeout) {
			if wr.first {
				return 0, errWatchdog
			}
			if w, _ := wr.m.flash.Read(0, 2); w[0] != 0xFF || w[1] != 0xFF {
				return 0, errWatchdog
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		wr.r, wr.w = 0, n
	}
	wr.first = false
	b := wr.buf[wr.r]
	wr.r++
	return b, nil
}

// message collects one message as stk500boot.c's state machine does: a
// wrong token or checksum silently restarts the search for MESSAGE_START;
// any sequence number is taken (_FIX_ISSUE_505_).
func (wr *wiring) message() (seq byte, body []byte, err error) {
	for {
		c, err := wr.getch()
		if err != nil {
			return 0, nil, err
		}
		if c != avr.V2MessageStart {
			continue
		}
		var h [4]byte
		for i := range h {
			if h[i], err = wr.getch(); err != nil {
				return 0, nil, err
			}
		}
		if h[3] != avr.V2Token {
			continue
		}
		n := int(h[1])<<8 | int(h[2])
		sum := avr.V2MessageStart ^ h[0] ^ h[1] ^ h[2] ^ h[3]
		body = make([]byte, n)
		for i := range body {
			if body[i], err = wr.getch(); err != nil {
				return 0, nil, err
			}
			sum ^= body[i]
		}
		x, err := wr.getch()
		if err != nil {
			return 0, nil, err
		}
		if x != sum || n == 0 {
			continue
		}
		return h[0], body, nil
	}
}

func (wr *wiring) loop() error {
	for {
		seq, body, err := wr.message()
		if err != nil {
			return err
		}
		ans, leave, err := wr.command(body)
		if err != nil {
			return err
		}
		out := []byte{avr.V2MessageStart, seq, byte(len(ans) >> 8), byte(len(ans)), avr.V2Token}
		out = append(out, ans...)
		var x byte
		for _, b := range out {
			x ^= b
		}
		if _, err := wr.s.Write(append(out, x)); err != nil {
			return err
		}
		wr.m.mu.Lock()
		wr.m.stats.Commands++
		wr.m.mu.Unlock()
		if leave {
			return errLeave
		}
	}
}

func (wr *wiring) command(b []byte) (ans []byte, leave bool, err error) {
	m := wr.m
	ok := []byte{b[0], avr.V2StatusOK}
	arg := func(i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0 // the rest of msgBuffer: zero in the model
	}
	sig := m.part.Signature
	switch b[0] {
	case avr.V2SPIMulti:
		var v byte
		switch {
		case arg(4) == 0x30:
			v = sig[min(int(arg(6)), 2)]
		case arg(4) == 0x50:
			v = m.info.fuses.Low
		case arg(4) == 0x58:
			v = m.info.fuses.High
		}
		return []byte{b[0], avr.V2StatusOK, 0, arg(4), 0, v, avr.V2StatusOK}, false, nil
	case avr.V2SignOn:
		return append(ok, append([]byte{8}, "AVRISP_2"...)...), false, nil
	case avr.V2GetParameter:
		return append(ok, wiringParams[arg(1)]), false, nil
	case avr.V2LeaveProgmodeISP:
		return ok, true, nil
	case avr.V2SetParameter, avr.V2EnterProgmodeISP:
		return ok, false, nil
	case avr.V2ReadSignatureISP:
		return append(ok, sig[min(int(arg(4)), 2)], avr.V2StatusOK), false, nil
	case 0x1A: // READ_LOCK_ISP
		return append(ok, m.info.fuses.Lock, avr.V2StatusOK), false, nil
	case 0x18: // READ_FUSE_ISP
		v := m.info.fuses.High
		if arg(2) == 0x50 {
			v = m.info.fuses.Low
			if arg(3) == 0x08 {
				v = m.info.fuses.Ext
			}
		}
		return append(ok, v, avr.V2StatusOK), false, nil
	case 0x19: // PROGRAM_LOCK_ISP: answered; the model keeps its lock bits
		return append(ok, avr.V2StatusOK), false, nil
	case avr.V2ChipEraseISP:
		// "issue 543, return FAILED instead of OK"; the erase pointer
		// goes back to 0.
		wr.erase = 0
		return []byte{b[0], avr.V2StatusFailed}, false, nil
	case avr.V2LoadAddress:
		wr.address = (uint32(arg(1))<<24 | uint32(arg(2))<<16 | uint32(arg(3))<<8 | uint32(arg(4))) << 1
		return ok, false, nil
	case avr.V2ProgramFlashISP, 0x15:
		size := int(arg(1))<<8 | int(arg(2))
		if len(b) < 10+size {
			size = max(len(b)-10, 0)
		}
		data := b[10 : 10+size]
		if b[0] == 0x15 { // PROGRAM_EEPROM_ISP
			m.mu.Lock()
			for i, v := range data {
				m.eeprom[(int(wr.address>>1)+i)%len(m.eeprom)] = v
			}
			m.mu.Unlock()
			wr.address += uint32(2 * len(data))
			return ok, false, wr.s.Busy(time.Duration(len(data)) * EEPROMByteTime)
		}
		return ok, false, wr.programFlash(data)
	case avr.V2ReadFlashISP, 0x16:
		size := int(arg(1))<<8 | int(arg(2))
		out := append([]byte(nil), ok...)
		if b[0] == 0x16 { // READ_EEPROM_ISP
			m.mu.Lock()
			for i := range size {
				out = append(out, m.eeprom[(int(wr.address)+i)%len(m.eeprom)])
			}
			m.mu.Unlock()
			wr.address += uint32(size)
			return append(out, avr.V2StatusOK), false, nil
		}
		// Words with pgm_read_word_far; an odd size reads one word more.
		for n := 0; n < size; n += 2 {
			w, err := m.flash.Read(wr.address%uint32(m.part.FlashSize), 2)
			if err != nil {
				return nil, false, err
			}
			out = append(out, w...)
			wr.address += 2
		}
		return append(out[:2+size], avr.V2StatusOK), false, nil
	}
	return []byte{b[0], avr.V2StatusFailed}, false, nil
}

// programFlash is PROGRAM_FLASH_ISP: erase the page at the erase pointer
// (only below the boot section) and move it on, fill the page buffer from
// the loaded address, write the page holding that address over whatever it
// holds (old AND new).
func (wr *wiring) programFlash(data []byte) error {
	m := wr.m
	ps := uint32(m.part.PageSize)
	if int(wr.erase) < m.part.BootStart() {
		if err := m.flash.EraseUnit(int(wr.erase / ps)); err != nil {
			return err
		}
		if err := wr.s.Busy(PageEraseTime); err != nil {
			return err
		}
		wr.erase += ps
	}
	start := wr.address % uint32(m.part.FlashSize)
	page := start &^ (ps - 1)
	buf := make([]byte, ps)
	for i := range buf {
		buf[i] = 0xFF
	}
	for i := 0; i+1 < len(data); i += 2 {
		off := (start + uint32(i)) & (ps - 1)
		buf[off], buf[off+1] = data[i], data[i+1]
	}
	wr.address += uint32(len(data) &^ 1)
	if int(page) >= m.part.BootStart() {
		// Lock bits 0x0F: SPM may not write the boot section.
		m.mu.Lock()
		m.stats.PagesIgnored++
		m.mu.Unlock()
		return nil
	}
	m.mu.Lock()
	m.stats.PagesWritten++
	m.mu.Unlock()
	if _, err := m.flash.Program(page, buf); err != nil {
		return err
	}
	return wr.s.Busy(PageWriteTime)
}
