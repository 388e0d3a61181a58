package avrsim

import (
	"bytes"
	"errors"
	"time"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
)

// uart is optiboot's view of the serial line: getch restarts the watchdog
// with every byte received without a framing error, putch queues a byte
// that flush sends.
type uart struct {
	s    *sim.Session
	buf  [512]byte
	r, w int
	fe   bool          // the bytes in buf arrived with framing errors
	wdt  time.Duration // watchdog period; negative: never expires
	due  time.Time     // when the watchdog fires
	out  []byte
}

// kick restarts the watchdog (optiboot.c, watchdogReset: the WDR
// instruction).
func (u *uart) kick() { u.due = time.Now().Add(u.wdt) }

// getch returns the next byte, or errWatchdog when the watchdog fires
// before one arrives, or sim.ErrHalted when the run ends.
func (u *uart) getch() (byte, error) {
	if u.r == u.w {
		if err := u.flush(); err != nil {
			return 0, err
		}
		var n int
		var err error
		if u.wdt < 0 {
			n, err = u.s.Read(u.buf[:])
		} else {
			left := time.Until(u.due)
			if left <= 0 {
				return 0, errWatchdog
			}
			n, err = u.s.ReadTimeout(u.buf[:], left)
		}
		if errors.Is(err, sim.ErrReadTimeout) {
			return 0, errWatchdog
		}
		if err != nil {
			return 0, err
		}
		u.r, u.w = 0, n
		u.fe = u.s.FramingErrors()
	}
	b := u.buf[u.r]
	u.r++
	// optiboot.c, getch: "A Framing Error indicates (probably) that
	// something is talking to us at the wrong bit rate ... DON'T reset the
	// watchdog", so that a host talking to the application at its own rate
	// cannot keep the bootloader from starting it.
	if !u.fe && u.wdt >= 0 {
		u.kick()
	}
	return b, nil
}

func (u *uart) putch(b ...byte) { u.out = append(u.out, b...) }

func (u *uart) flush() error {
	if len(u.out) == 0 {
		return nil
	}
	_, err := u.s.Write(u.out)
	u.out = u.out[:0]
	return err
}

// flashTime is one LED toggle of optiboot's start-up flashes: flash_led
// loads Timer1 with -(F_CPU/(1024*16)) at a 1024 prescaler and waits for
// it to overflow, 1/16 s (optiboot.c, flash_led).
const flashTime = time.Second / 16

// usartHold is how many bytes the USART keeps while nobody reads it: two in
// its receive buffer and one waiting in the receive shift register; the
// start bit of the next one is a data overrun and it is lost (ATmega328P
// datasheet, USART0, "Receiver Error Flags": DOR).
const usartHold = 3

// ledFlashes models optiboot's start-up LED flashes: with the UART already
// on, it toggles the LED 2*n times, 1/16 s each, kicking the watchdog,
// before it reads a byte (optiboot.c, main: flash_led(LED_START_FLASHES *
// 2), after UCSR0B = RXEN0|TXEN0). What arrives meanwhile is held as the
// USART holds it.
func (u *uart) ledFlashes(n int) error {
	if n <= 0 {
		return nil
	}
	if u.s.Wait(time.Duration(2*n)*flashTime) != nil {
		return sim.ErrHalted
	}
	var drop [64]byte
	held := 0
	for {
		k, _ := u.s.ReadTimeout(drop[:], 0)
		if k == 0 {
			break
		}
		c := copy(u.buf[held:usartHold], drop[:k])
		held += c
	}
	u.r, u.w = 0, held
	u.fe = u.s.FramingErrors()
	return nil
}

// optiboot holds the bootloader's registers for one run.
type optiboot struct {
	m     *Model
	u     *uart
	z     uint16 // the byte address LOAD_ADDRESS set (Z)
	rampz byte   // the 2560's RAMPZ: bits 16 and up of the byte address
	// buff is optiboot 4.x's page buffer in RAM, which keeps what the
	// previous PROG_PAGE left in it for the whole run.
	buff []byte
}

// legacy reports whether the model runs optiboot 4.x (the optiboot.c in
// Arduino 1.8 and Debian's arduino-core-avr), whose PROG_PAGE ignores the
// memory type and programs a whole page from its RAM buffer.
func (o *optiboot) legacy() bool { return o.m.opts.Major < 5 }

func (m *Model) runBootloader(s *sim.Session) {
	s.SetBaud(m.opts.Baud)
	o := &optiboot{m: m, u: &uart{s: s, wdt: m.window}}
	o.u.kick()
	err := o.u.ledFlashes(m.opts.LEDFlashes)
	o.u.kick()
	if err == nil {
		err = o.loop()
	}
	if errors.Is(err, errWatchdog) {
		m.watchdogReset(s)
	}
}

// extended reports whether the part has RAMPZ (more than 64 KiB of flash).
func (o *optiboot) extended() bool { return o.m.part.FlashSize > 64*1024 }

// verifySpace reads the command terminator. A wrong one makes optiboot
// shorten its watchdog and spin until it resets into the application.
func (o *optiboot) verifySpace() error {
	b, err := o.u.getch()
	if err != nil {
		return err
	}
	if b != avr.SyncCRCEOP {
		o.m.mu.Lock()
		o.m.stats.BadTerminators++
		o.m.mu.Unlock()
		if o.u.s.Wait(watchdogShort) != nil {
			return sim.ErrHalted
		}
		return errWatchdog
	}
	o.u.putch(avr.RespInSync)
	return nil
}

// getN reads n bytes and the terminator.
func (o *optiboot) getN(n int) error {
	for range n {
		if _, err := o.u.getch(); err != nil {
			return err
		}
	}
	return o.verifySpace()
}

// length reads a PROG_PAGE or READ_PAGE length: both bytes on parts with
// pages over 255 bytes, else only the low one; 0 wraps to the maximum, as
// optiboot's do-while loops do.
func (o *optiboot) length() (int, error) {
	hi, err := o.u.getch()
	if err != nil {
		return 0, err
	}
	lo, err := o.u.getch()
	if err != nil {
		return 0, err
	}
	if o.m.part.PageSize > 255 {
		n := int(hi)<<8 | int(lo)
		if n == 0 {
			n = 1 << 16
		}
		return n, nil
	}
	if lo == 0 {
		return 256, nil
	}
	return int(lo), nil
}

// hang models optiboot stuck in a loop that does not read the UART: the
// watchdog resets the unit when its period runs out.
func (o *optiboot) hang() error {
	d := time.Until(o.u.due)
	if o.u.wdt < 0 {
		d = DefaultWindow
	}
	if err := o.u.flush(); err != nil {
		return err
	}
	if o.u.s.Wait(max(d, 0)) != nil {
		return sim.ErrHalted
	}
	return errWatchdog
}

func (o *optiboot) loop() error {
	for {
		ch, err := o.u.getch()
		if err != nil {
			return err
		}
		if err := o.command(ch); err != nil {
			return err
		}
		o.m.mu.Lock()
		o.m.stats.Commands++
		o.m.mu.Unlock()
		o.u.putch(avr.RespOK)
		if err := o.u.flush(); err != nil {
			return err
		}
	}
}

// command handles one command up to, not including, the final STK_OK.
func (o *optiboot) command(ch byte) error {
	u := o.u
	switch ch {
	case avr.CmdGetParameter:
		which, err := u.getch()
		if err != nil {
			return err
		}
		if err := o.verifySpace(); err != nil {
			return err
		}
		switch which {
		case avr.ParamSWMinor:
			u.putch(o.m.opts.Minor)
		case avr.ParamSWMajor:
			u.putch(o.m.opts.Major)
		default:
			u.putch(0x03)
		}
	case avr.CmdSetDevice:
		return o.getN(20)
	case avr.CmdSetDeviceExt:
		return o.getN(5)
	case avr.CmdLoadAddress:
		lo, err := u.getch()
		if err != nil {
			return err
		}
		hi, err := u.getch()
		if err != nil {
			return err
		}
		if o.extended() {
			o.rampz = o.rampz&^1 | hi>>7
		}
		o.z = (uint16(hi)<<8 | uint16(lo)) << 1
		return o.verifySpace()
	case avr.CmdUniversal:
		if o.extended() {
			op, err := u.getch()
			if err != nil {
				return err
			}
			if op == avr.OpLoadExtAddr {
				if _, err := u.getch(); err != nil {
					return err
				}
				ext, err := u.getch()
				if err != nil {
					return err
				}
				o.rampz = o.rampz&1 | ext<<1
				if err := o.getN(1); err != nil {
					return err
				}
			} else if err := o.getN(3); err != nil {
				return err
			}
		} else if err := o.getN(4); err != nil {
			return err
		}
		u.putch(0x00)
	case avr.CmdProgPage:
		return o.progPage()
	case avr.CmdReadPage:
		return o.readPage()
	case avr.CmdReadSign:
		if err := o.verifySpace(); err != nil {
			return err
		}
		u.putch(o.m.part.Signature[:]...)
	case avr.CmdLeaveProgMode:
		// Adaboot's no-wait: the watchdog fires 16 ms after the last byte.
		u.wdt = watchdogShort
		return o.verifySpace()
	default:
		// GET_SYNC, ENTER_PROGMODE and anything unknown: just the terminator.
		return o.verifySpace()
	}
	return nil
}

// addr returns the full byte address: RAMPZ:Z.
func (o *optiboot) addr() uint32 { return uint32(o.rampz)<<16 | uint32(o.z) }

func (o *optiboot) progPage() error {
	u := o.u
	n, err := o.length()
	if err != nil {
		return err
	}
	mem, err := u.getch()
	if err != nil {
		return err
	}
	data := make([]byte, n)
	for i := range data {
		if data[i], err = u.getch(); err != nil {
			return err
		}
	}
	if err := o.verifySpace(); err != nil {
		return err
	}
	if err := u.flush(); err != nil {
		return err
	}
	if o.legacy() {
		// optiboot 4.4 (optiboot.c, STK_PROG_PAGE: "we support flash
		// programming only, not EEPROM"): the memory type byte is read and
		// dropped, so 'E' data lands in flash; the page is filled with
		// SPM_PAGESIZE/2 words from buff, so a short write programs the
		// rest of the page with what the last one left there.
		if o.buff == nil {
			o.buff = bytes.Repeat([]byte{0xFF}, o.m.part.PageSize)
		}
		copy(o.buff, data)
		return o.writeFlash(o.buff)
	}
	if mem == byte(avr.EEPROM) {
		if !o.m.opts.EEPROM {
			// The stock build loops until the watchdog resets it.
			return o.hang()
		}
		o.m.mu.Lock()
		for i, b := range data {
			o.m.eeprom[(int(o.z)+i)%len(o.m.eeprom)] = b
		}
		o.m.mu.Unlock()
		return u.s.Busy(time.Duration(n) * EEPROMByteTime)
	}
	return o.writeFlash(data)
}

// writeFlash does what optiboot's page write does: erase the page holding
// the address, fill the page buffer word by word, write it.
func (o *optiboot) writeFlash(data []byte) error {
	m := o.m
	ps := m.part.PageSize
	a := o.addr() % uint32(m.part.FlashSize)
	page := a &^ uint32(ps-1)
	if int(page) >= m.part.BootStart() {
		// The lock bits forbid SPM in the boot section: the erase and the
		// write do nothing and take no time.
		m.mu.Lock()
		m.stats.PagesIgnored++
		m.mu.Unlock()
		return nil
	}
	if err := m.flash.EraseUnit(int(page) / ps); err != nil {
		return err
	}
	if err := o.u.s.Busy(PageEraseTime); err != nil {
		return err
	}
	if len(data)%2 != 0 {
		// The fill loop counts down by two and never reaches zero.
		return o.hang()
	}
	// The page buffer: each word can be loaded once between writes; the
	// address wraps within the page.
	buf := make([]byte, ps)
	set := make([]bool, ps/2)
	for i := range buf {
		buf[i] = 0xFF
	}
	for i := 0; i < len(data); i += 2 {
		off := (int(a) + i) & (ps - 1)
		if !set[off/2] {
			buf[off], buf[off+1] = data[i], data[i+1]
			set[off/2] = true
		}
	}
	m.mu.Lock()
	for addr, s := range m.stuck {
		if addr >= page && addr < page+uint32(ps) {
			i := addr - page
			buf[i] = buf[i]&^s.mask | s.value
		}
	}
	m.stats.PagesWritten++
	m.mu.Unlock()
	if _, err := m.flash.Program(page, buf); err != nil {
		return err
	}
	return o.u.s.Busy(PageWriteTime)
}

func (o *optiboot) readPage() error {
	u := o.u
	n, err := o.length()
	if err != nil {
		return err
	}
	mem, err := u.getch()
	if err != nil {
		return err
	}
	if err := o.verifySpace(); err != nil {
		return err
	}
	m := o.m
	if mem == byte(avr.EEPROM) && m.opts.EEPROM && !o.legacy() {
		m.mu.Lock()
		for i := range n {
			u.putch(m.eeprom[(int(o.z)+i)%len(m.eeprom)])
		}
		m.mu.Unlock()
		return nil
	}
	// Flash (and, in builds without EEPROM support, 'E' too): LPM Z+ on
	// small parts, ELPM RAMPZ:Z+ on the 2560, which carries into RAMPZ.
	size := uint32(m.part.FlashSize)
	a := o.addr()
	if o.extended() {
		o.rampz = byte((a + uint32(n)) >> 16)
	}
	// On small parts Z wraps at 64 KiB and the bits above the flash size
	// are ignored; on the 2560 RAMPZ:Z wraps at the flash size.
	for n > 0 {
		a %= size
		k := min(n, int(size-a))
		b, err := m.flash.Read(a, k)
		if err != nil {
			return err
		}
		u.putch(b...)
		a += uint32(k)
		n -= k
	}
	return nil
}
