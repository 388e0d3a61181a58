// Package avr is a client for the STK500 version 1 protocol as optiboot,
// the bootloader of the Arduino Uno and most ATmega boards, speaks it.
//
// The protocol is Atmel's AVR061 ("STK500 Communication Protocol",
// https://ww1.microchip.com/downloads/en/Appnotes/doc2525.pdf); optiboot
// (https://github.com/Optiboot/optiboot, optiboot.c) implements a skeleton of
// it. Every command ends with Sync_CRC_EOP (0x20); every answer is
// STK_INSYNC (0x14), the data if any, then STK_OK (0x10):
//
//	host: 30 20                 GET_SYNC
//	unit: 14 10
//	host: 75 20                 READ_SIGN
//	unit: 14 1E 95 0F 10        an ATmega328P
//	host: 55 00 01 20           LOAD_ADDRESS word 0x0100 (byte 0x0200)
//	unit: 14 10
//	host: 64 00 80 46 <128 bytes> 20   PROG_PAGE 128 bytes of 'F'lash
//	unit: 14 ... 10             STK_OK once the page is erased and written
//
// What optiboot does and does not do, and what this client therefore offers:
//
//   - It waits about one second after an external reset for traffic, then
//     starts the application; after a power-on reset it starts the
//     application at once. A host must pulse reset inside each sync attempt
//     (Options.Reset), not once before them, and then wait out the part's
//     start-up time (Options.ResetDelay), during which its UART is off.
//   - Addresses are word addresses (byte address / 2), for EEPROM too, as
//     avrdude sends them. Parts above 128 KiB of flash (the ATmega2560) take
//     the high bits through the UNIVERSAL command Load Extended Address
//     (0x4D 0x00 ext 0x00), which optiboot turns into RAMPZ.
//   - There is no erase command: PROG_PAGE erases the page it writes. The
//     chip-erase UNIVERSAL command is answered and ignored.
//   - There is no checksum command: verifying means reading back.
//   - EEPROM ('E' memory) exists only in optiboot builds with SUPPORT_EEPROM
//     or BIGBOOT. The Uno's stock build lacks it: it answers PROG_PAGE 'E'
//     with STK_INSYNC, then hangs until its watchdog restarts the
//     application, and answers READ_PAGE 'E' with flash bytes.
//   - optiboot never sends STK_NOSYNC: on a wrong terminator it lets its
//     watchdog reset the unit into the application. Other STK500v1
//     firmwares answer STK_NOSYNC (0x15); both surface as errors here.
//   - An ATmega has no serial number readable through the bootloader: its
//     signature names the part, not the unit. The unit's identity must come
//     from a barcode label or a recipe step (for example an ID the
//     application prints, or one written to EEPROM by an earlier run).
//
// The client never opens a port; it takes a bootloader.Port.
package avr

import (
	"errors"
	"fmt"
	"strings"
)

// STK500v1 command bytes (AVR061), those optiboot handles.
const (
	CmdGetSync       = 0x30
	CmdGetParameter  = 0x41
	CmdSetDevice     = 0x42
	CmdSetDeviceExt  = 0x45
	CmdEnterProgMode = 0x50
	CmdLeaveProgMode = 0x51
	CmdLoadAddress   = 0x55
	CmdUniversal     = 0x56
	CmdProgPage      = 0x64
	CmdReadPage      = 0x74
	CmdReadSign      = 0x75
)

// Framing and answer bytes.
const (
	SyncCRCEOP = 0x20 // ends every command
	RespInSync = 0x14 // starts every answer
	RespOK     = 0x10 // ends every answer
	RespFailed = 0x11 // STK_FAILED (not sent by optiboot)
	RespNoSync = 0x15 // STK_NOSYNC (not sent by optiboot)
)

// GET_PARAMETER parameters optiboot answers; any other gets 0x03.
const (
	ParamHWVersion = 0x80
	ParamSWMajor   = 0x81 // optiboot's major version
	ParamSWMinor   = 0x82 // optiboot's minor version
)

// UNIVERSAL command opcodes of interest (the AVR serial programming
// instruction set). optiboot answers every UNIVERSAL command with 0x00 and
// acts on LoadExtAddr only.
const (
	OpLoadExtAddr = 0x4D // 4D 00 ext 00: bits 16.. of the word address
	OpChipErase   = 0xAC // AC 80 00 00: chip erase; ignored by optiboot
)

// Memory selects what PROG_PAGE and READ_PAGE address.
type Memory byte

// Memories.
const (
	Flash  Memory = 'F'
	EEPROM Memory = 'E'
)

func (m Memory) String() string {
	switch m {
	case Flash:
		return "flash"
	case EEPROM:
		return "EEPROM"
	}
	return fmt.Sprintf("memory %q", byte(m))
}

// Part describes an AVR part as the bootloader host needs it.
type Part struct {
	Name       string  // "ATmega328P"
	ID         string  // avrdude's part id, "m328p"
	Signature  [3]byte // what READ_SIGN answers
	FlashSize  int     // bytes
	PageSize   int     // flash page in bytes: what one PROG_PAGE erases and writes
	BootSize   int     // bytes optiboot occupies at the top of flash (its boot section)
	EEPROMSize int     // bytes
	EEPROMPage int     // EEPROM page in bytes (avrdude's eeprom page_size)
	DevCode    byte    // STK500 device code sent in SET_DEVICE
	Pagel, BS2 byte    // parallel-programming pins sent in SET_DEVICE_EXT
	// Readback is the polling value pair avrdude's configuration gives for
	// flash and EEPROM (FF FF, or 00 00 where it gives none), sent in
	// SET_DEVICE.
	Readback byte
}

// BootStart returns the byte address where the bootloader section starts:
// the end of the space an application may occupy.
func (p Part) BootStart() int { return p.FlashSize - p.BootSize }

// ExtendedAddressing reports whether word addresses need more than 16 bits,
// so that the host must send Load Extended Address (flash above 128 KiB).
func (p Part) ExtendedAddressing() bool { return p.FlashSize > 128*1024 }

// MaxPageLen is the largest length optiboot accepts in one PROG_PAGE or
// READ_PAGE on this part: on parts with pages of up to 255 bytes it reads
// only the low length byte (0 meaning 256).
func (p Part) MaxPageLen() int {
	if p.PageSize > 255 {
		return 65535
	}
	return 256
}

func (p Part) String() string {
	return fmt.Sprintf("%s (signature %02X %02X %02X, %d KiB flash)", p.Name, p.Signature[0], p.Signature[1], p.Signature[2], p.FlashSize/1024)
}

// parts are the parts this package knows, with the boot section optiboot
// uses on them (its smallest boot section that holds 512 bytes of code).
var parts = []Part{
	{Name: "ATmega328P", ID: "m328p", Signature: [3]byte{0x1E, 0x95, 0x0F}, FlashSize: 32 * 1024, PageSize: 128, BootSize: 512,
		EEPROMSize: 1024, EEPROMPage: 4, DevCode: 0x86, Pagel: 0xD7, BS2: 0xC2, Readback: 0xFF},
	{Name: "ATmega328", ID: "m328", Signature: [3]byte{0x1E, 0x95, 0x14}, FlashSize: 32 * 1024, PageSize: 128, BootSize: 512,
		EEPROMSize: 1024, EEPROMPage: 4, DevCode: 0x86, Pagel: 0xD7, BS2: 0xC2, Readback: 0xFF},
	{Name: "ATmega168", ID: "m168", Signature: [3]byte{0x1E, 0x94, 0x06}, FlashSize: 16 * 1024, PageSize: 128, BootSize: 512,
		EEPROMSize: 512, EEPROMPage: 4, DevCode: 0x86, Pagel: 0xD7, BS2: 0xC2, Readback: 0xFF},
	{Name: "ATmega1284P", ID: "m1284p", Signature: [3]byte{0x1E, 0x97, 0x05}, FlashSize: 128 * 1024, PageSize: 256, BootSize: 1024,
		EEPROMSize: 4096, EEPROMPage: 8, DevCode: 0x82, Pagel: 0xD7, BS2: 0xA0, Readback: 0xFF},
	{Name: "ATmega2560", ID: "m2560", Signature: [3]byte{0x1E, 0x98, 0x01}, FlashSize: 256 * 1024, PageSize: 256, BootSize: 1024,
		EEPROMSize: 4096, EEPROMPage: 8, DevCode: 0xB2, Pagel: 0xD7, BS2: 0xA0, Readback: 0x00},
}

// Parts returns the parts this package knows.
func Parts() []Part { return append([]Part(nil), parts...) }

// LookupSignature returns the part with signature sig.
func LookupSignature(sig [3]byte) (Part, bool) {
	for _, p := range parts {
		if p.Signature == sig {
			return p, true
		}
	}
	return Part{}, false
}

// LookupName returns the part named name, matched without regard to case
// against its name ("ATmega328P") or avrdude id ("m328p").
func LookupName(name string) (Part, bool) {
	for _, p := range parts {
		if strings.EqualFold(p.Name, name) || strings.EqualFold(p.ID, name) {
			return p, true
		}
	}
	return Part{}, false
}

// Sentinel errors a ProtocolError wraps.
var (
	// ErrNoSync: the unit answered STK_NOSYNC (0x15): it saw a command it
	// did not expect. optiboot itself never sends it.
	ErrNoSync = errors.New("unit answered STK_NOSYNC (0x15)")
	// ErrNotInSync: the answer did not start with STK_INSYNC (0x14).
	ErrNotInSync = errors.New("answer does not start with STK_INSYNC (0x14)")
	// ErrFailed: the unit answered STK_FAILED (0x11) instead of STK_OK.
	ErrFailed = errors.New("unit answered STK_FAILED (0x11)")
	// ErrBadTerminator: the answer did not end with STK_OK (0x10).
	ErrBadTerminator = errors.New("answer does not end with STK_OK (0x10)")
)

// ProtocolError is an answer that does not follow the protocol.
type ProtocolError struct {
	Cmd byte   // the command answered
	Got []byte // the bytes received
	Err error  // ErrNoSync, ErrNotInSync, ErrFailed or ErrBadTerminator
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("avr: %s: %v (got % X); resynchronise (reset and Sync) and retry", CmdName(e.Cmd), e.Err, e.Got)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// UnknownPartError is a signature not in the parts table.
type UnknownPartError struct {
	Signature [3]byte
}

func (e *UnknownPartError) Error() string {
	return fmt.Sprintf("avr: unknown part signature %02X %02X %02X; add it to the parts table or check the wiring (00 00 00 or FF FF FF means no chip answered)",
		e.Signature[0], e.Signature[1], e.Signature[2])
}

// VerifyError is a read-back that differs from what was written.
type VerifyError struct {
	Mem  Memory
	Addr uint32 // byte address of the first differing byte
	Want byte
	Got  byte
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("avr: verify %s: byte at 0x%05X is 0x%02X, want 0x%02X; write again, and replace the unit if it persists", e.Mem, e.Addr, e.Got, e.Want)
}

// CmdName names a command byte as AVR061 does.
func CmdName(c byte) string {
	switch c {
	case CmdGetSync:
		return "GET_SYNC"
	case CmdGetParameter:
		return "GET_PARAMETER"
	case CmdSetDevice:
		return "SET_DEVICE"
	case CmdSetDeviceExt:
		return "SET_DEVICE_EXT"
	case CmdEnterProgMode:
		return "ENTER_PROGMODE"
	case CmdLeaveProgMode:
		return "LEAVE_PROGMODE"
	case CmdLoadAddress:
		return "LOAD_ADDRESS"
	case CmdUniversal:
		return "UNIVERSAL"
	case CmdProgPage:
		return "PROG_PAGE"
	case CmdReadPage:
		return "READ_PAGE"
	case CmdReadSign:
		return "READ_SIGN"
	}
	return fmt.Sprintf("command 0x%02X", c)
}

// DecodeReply checks a complete answer to command cmd that carries n data
// bytes (STK_INSYNC, n bytes, STK_OK) and returns the data. It returns a
// *ProtocolError for anything else.
func DecodeReply(cmd byte, raw []byte, n int) ([]byte, error) {
	bad := func(err error) error {
		return &ProtocolError{Cmd: cmd, Got: append([]byte(nil), raw...), Err: err}
	}
	if n < 0 {
		return nil, fmt.Errorf("avr: DecodeReply: negative length %d", n)
	}
	if len(raw) == 0 {
		return nil, bad(ErrNotInSync)
	}
	switch raw[0] {
	case RespInSync:
	case RespNoSync:
		return nil, bad(ErrNoSync)
	default:
		return nil, bad(ErrNotInSync)
	}
	if len(raw) != n+2 {
		return nil, bad(fmt.Errorf("answer of %d bytes, want %d", len(raw), n+2))
	}
	switch raw[n+1] {
	case RespOK:
	case RespFailed:
		return nil, bad(ErrFailed)
	default:
		return nil, bad(ErrBadTerminator)
	}
	return raw[1 : n+1], nil
}

// EncodeReply returns the answer carrying data: STK_INSYNC, data, STK_OK.
func EncodeReply(data []byte) []byte {
	b := make([]byte, 0, len(data)+2)
	b = append(b, RespInSync)
	b = append(b, data...)
	return append(b, RespOK)
}
