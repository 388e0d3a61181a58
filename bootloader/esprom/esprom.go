// Package esprom is a client for the serial download mode that Espressif
// burns into the ROM of the ESP32 and the ESP8266: the protocol esptool
// speaks, documented in "Serial Protocol" of the esptool documentation
// (https://docs.espressif.com/projects/esptool/en/latest/esp32/advanced-topics/serial-protocol.html).
// The eFuse layout that holds the MAC is in the ESP32 Technical Reference
// Manual, chapter "eFuse Controller"
// (https://www.espressif.com/sites/default/files/documentation/esp32_technical_reference_manual_en.pdf).
//
// A unit enters download mode when GPIO0 is low as EN (its reset) rises.
// The ROM then prints a boot line ("waiting for download") and measures the
// rate of the host's first SYNC. Every packet is SLIP-framed: it starts and
// ends with C0, and inside it C0 is sent as DB DC and DB as DB DD. Bytes
// between packets (the boot line, noise) are ignored.
//
// A request is direction 00, the opcode, a 16-bit length, a 32-bit checksum
// (only FLASH_DATA, FLASH_DEFL_DATA and MEM_DATA use it: 0xEF XOR every
// payload byte) and the data, all little-endian. A response is direction
// 01, the same opcode, the length, a 32-bit value (READ_REG's result) and
// data that ends in status bytes: status (0 ok, 1 failed) and an error
// code. The ESP32 ROM sends four status bytes, the ESP8266 ROM two:
//
//	host: C0 00 0A 04 00 00 00 00 00 00 10 00 40 C0    READ_REG 0x40001000
//	unit: C0 01 0A 04 00 83 1D F0 00 00 00 00 00 C0    0x00F01D83: an ESP32
//	host: C0 00 03 10 04 xx xx xx xx <len seq 0 0> <1024 data bytes> C0
//	unit: C0 01 03 04 00 00 00 00 00 00 00 00 00 C0    FLASH_DATA done
//	unit: C0 01 03 04 00 00 00 00 00 01 07 00 00 C0    failed: bad checksum (07)
//
// What the ROMs do, and what this client therefore does:
//
//   - SYNC (07 07 12 20 and 32 x 55) is answered eight times; the client
//     retries it and skips stale answers by opcode.
//   - FLASH_BEGIN and FLASH_DEFL_BEGIN erase the whole region up front, in
//     4 KiB sectors; each FLASH_DATA block is programmed and read back, and
//     a mismatch is error 08. The ESP8266 ROM miscomputes how much to erase
//     (it erases up to twice what it is asked); the client asks for the
//     amount that makes it erase the region, as esptool does.
//   - Only the ESP32 ROM inflates zlib streams (FLASH_DEFL_*), computes MD5
//     over flash (SPI_FLASH_MD5, 32 hex digits), changes rate
//     (CHANGE_BAUDRATE), attaches the SPI flash (SPI_ATTACH) and reads flash
//     (READ_FLASH_SLOW, 64 bytes at a time). The ESP8266 ROM answers those
//     with error 05, invalid message: on it the client writes uncompressed
//     and relies on the ROM's read-back of each block.
//   - Delta flashing: before writing, the client compares the MD5 of each
//     chunk of the region on the unit with the image's and writes only the
//     chunks that differ.
//   - Connecting is esptool's: up to seven resets, five SYNCs after each,
//     reset delays alternating by 500 ms; the ROM's boot line, read after
//     each reset, tells a unit that booted from flash (GPIO0 not low:
//     BootModeError) from one that is in download mode but deaf.
//   - The ESP32 ROM takes the flash for 2 MiB until told otherwise:
//     AttachFlash attaches it on the pins the eFuse names, reads its JEDEC
//     ID through the SPI controller's registers and sends SPI_SET_PARAMS
//     with the real size, as esptool does.
//   - Timeouts are esptool's: 40 s per MB erased or written (of the
//     inflated size for a compressed block), 8 s per MB hashed, never
//     under 3 s. CHANGE_BAUDRATE scales the rate by the ROM's crystal
//     estimate (its 8 MHz clock drifts) and waits 50 ms before flushing.
//
// The client never opens a port: it takes a bootloader.Port. Entry into
// download mode is a function the caller supplies: a bench's GPIO lines,
// or ClassicReset and UnixTightReset, which drive a development board's
// auto-reset transistors through the adapter's DTR and RTS.
package esprom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes of the ROM's serial protocol.
const (
	OpFlashBegin      = 0x02
	OpFlashData       = 0x03
	OpFlashEnd        = 0x04
	OpMemBegin        = 0x05
	OpMemEnd          = 0x06
	OpMemData         = 0x07
	OpSync            = 0x08
	OpWriteReg        = 0x09
	OpReadReg         = 0x0A
	OpSPISetParams    = 0x0B
	OpSPIAttach       = 0x0D
	OpReadFlashSlow   = 0x0E
	OpChangeBaudrate  = 0x0F
	OpFlashDeflBegin  = 0x10
	OpFlashDeflData   = 0x11
	OpFlashDeflEnd    = 0x12
	OpSPIFlashMD5     = 0x13
	OpGetSecurityInfo = 0x14
	// Commands only esptool's flasher stub has (it runs from RAM after
	// MEM_END).
	OpEraseFlash  = 0xD0
	OpEraseRegion = 0xD1
	OpReadFlash   = 0xD2
	OpRunUserCode = 0xD3
)

// OpName names an opcode as esptool's documentation does.
func OpName(op byte) string {
	switch op {
	case OpFlashBegin:
		return "FLASH_BEGIN"
	case OpFlashData:
		return "FLASH_DATA"
	case OpFlashEnd:
		return "FLASH_END"
	case OpMemBegin:
		return "MEM_BEGIN"
	case OpMemEnd:
		return "MEM_END"
	case OpMemData:
		return "MEM_DATA"
	case OpSync:
		return "SYNC"
	case OpWriteReg:
		return "WRITE_REG"
	case OpReadReg:
		return "READ_REG"
	case OpSPISetParams:
		return "SPI_SET_PARAMS"
	case OpSPIAttach:
		return "SPI_ATTACH"
	case OpReadFlashSlow:
		return "READ_FLASH_SLOW"
	case OpChangeBaudrate:
		return "CHANGE_BAUDRATE"
	case OpFlashDeflBegin:
		return "FLASH_DEFL_BEGIN"
	case OpFlashDeflData:
		return "FLASH_DEFL_DATA"
	case OpFlashDeflEnd:
		return "FLASH_DEFL_END"
	case OpSPIFlashMD5:
		return "SPI_FLASH_MD5"
	case OpGetSecurityInfo:
		return "GET_SECURITY_INFO"
	case OpEraseFlash:
		return "ERASE_FLASH"
	case OpEraseRegion:
		return "ERASE_REGION"
	case OpReadFlash:
		return "READ_FLASH"
	case OpRunUserCode:
		return "RUN_USER_CODE"
	}
	return fmt.Sprintf("opcode 0x%02X", op)
}

// Error codes the ROMs put in the second status byte.
const (
	CodeInvalidMessage = 0x05 // the message is invalid, or the command unknown
	CodeFailedToAct    = 0x06 // the command was understood but failed
	CodeBadCRC         = 0x07 // the data checksum is wrong
	CodeFlashWrite     = 0x08 // a programmed block read back different
	CodeFlashRead      = 0x09 // reading the SPI flash failed
	CodeReadLength     = 0x0A // a read length is invalid
	CodeDeflate        = 0x0B // the compressed stream is corrupt
)

// Error codes of esptool's flasher stub, in the same place.
const (
	CodeStubBadDataLen     = 0xC0
	CodeStubBadChecksum    = 0xC1
	CodeStubBadBlockSize   = 0xC2
	CodeStubInvalidCommand = 0xC3
	CodeStubFailedSPIOp    = 0xC4
	CodeStubFailedUnlock   = 0xC5
	CodeStubNotInFlashMode = 0xC6
	CodeStubInflateError   = 0xC7
	CodeStubNotEnoughData  = 0xC8
	CodeStubTooMuchData    = 0xC9
)

// SLIP bytes.
const (
	SLIPEnd    = 0xC0
	SLIPEsc    = 0xDB
	SLIPEscEnd = 0xDC
	SLIPEscEsc = 0xDD
)

// Protocol constants.
const (
	// ChecksumSeed starts the XOR checksum of data payloads.
	ChecksumSeed = 0xEF
	// ChipDetectReg is the ROM address whose word tells the chip family.
	ChipDetectReg = 0x40001000
	// BlockSize is the FLASH_DATA block the ROMs take (esptool's
	// FLASH_WRITE_SIZE for the ROM loaders).
	BlockSize = 0x400
	// SectorSize is the SPI flash erase unit.
	SectorSize = 0x1000
	// ReadBlock is how many bytes READ_FLASH_SLOW returns.
	ReadBlock = 64
	// MaxPacket bounds a decoded packet: a 16 KiB block and its header.
	MaxPacket = 0x4000 + 64
)

// SyncPayload is SYNC's data: 07 07 12 20 and 32 bytes of 55.
var SyncPayload = append([]byte{0x07, 0x07, 0x12, 0x20}, []byte(strings.Repeat("\x55", 32))...)

// SyncValue is the value the ROMs put in their answers to SYNC (the flasher
// stub sends 0).
const SyncValue = 0x20120707

// Chip describes a ROM family and what its download mode offers.
type Chip struct {
	Name      string
	Magic     uint32 // the word at ChipDetectReg
	StatusLen int    // status bytes that end every response
	// Features of the ROM loader (the flasher stub has them all).
	Deflate    bool // FLASH_DEFL_BEGIN/DATA/END
	MD5        bool // SPI_FLASH_MD5
	ChangeBaud bool // CHANGE_BAUDRATE
	Attach     bool // SPI_ATTACH
	ReadFlash  bool // READ_FLASH_SLOW
	// EraseBug says FLASH_BEGIN's erase size must be adjusted (ESP8266).
	EraseBug bool
	// MACRegs are the eFuse or OTP words that hold the MAC.
	MACRegs []uint32
	// BootBaud is the rate of the ROM's boot messages (26 MHz crystal on
	// the ESP8266: 74880).
	BootBaud int
	// SPI is the SPI flash controller the client drives with WRITE_REG
	// and READ_REG to run flash commands (RDID), as esptool's
	// run_spiflash_command does.
	SPI SPIRegs
}

// SPIRegs is where a chip's SPI flash controller has its registers
// (esptool's SPI_REG_BASE and SPI_*_OFFS per target).
type SPIRegs struct {
	Base     uint32
	Usr      uint32 // SPI_USR_REG offset
	Usr1     uint32 // SPI_USR1_REG offset
	Usr2     uint32 // SPI_USR2_REG offset
	W0       uint32 // SPI_W0_REG offset: the data buffer
	MosiDlen uint32 // SPI_MOSI_DLEN_REG offset; 0 where the lengths live in USR1 (ESP8266)
	MisoDlen uint32 // SPI_MISO_DLEN_REG offset
}

// The ROM families the client knows.
var (
	ESP32 = Chip{Name: "ESP32", Magic: 0x00F01D83, StatusLen: 4,
		Deflate: true, MD5: true, ChangeBaud: true, Attach: true, ReadFlash: true,
		MACRegs: []uint32{0x3FF5A004, 0x3FF5A008}, BootBaud: 115200,
		SPI: SPIRegs{Base: 0x3FF42000, Usr: 0x1C, Usr1: 0x20, Usr2: 0x24, W0: 0x80, MosiDlen: 0x28, MisoDlen: 0x2C}}
	ESP8266 = Chip{Name: "ESP8266", Magic: 0xFFF0C101, StatusLen: 2, EraseBug: true,
		MACRegs: []uint32{0x3FF00050, 0x3FF00054, 0x3FF0005C}, BootBaud: 74880,
		SPI: SPIRegs{Base: 0x60000200, Usr: 0x1C, Usr1: 0x20, Usr2: 0x24, W0: 0x40}}
)

// Chips lists the known families.
var Chips = []Chip{ESP32, ESP8266}

// ChipByMagic returns the family whose detect word is magic.
func ChipByMagic(magic uint32) (Chip, bool) {
	for _, c := range Chips {
		if c.Magic == magic {
			return c, true
		}
	}
	return Chip{}, false
}

// Checksum returns the checksum of a data payload: ChecksumSeed XOR every
// byte.
func Checksum(data []byte) uint32 {
	x := byte(ChecksumSeed)
	for _, b := range data {
		x ^= b
	}
	return uint32(x)
}

// AppendSLIP appends pkt framed: C0, pkt with C0 and DB escaped, C0.
func AppendSLIP(dst, pkt []byte) []byte {
	dst = append(dst, SLIPEnd)
	for _, b := range pkt {
		switch b {
		case SLIPEnd:
			dst = append(dst, SLIPEsc, SLIPEscEnd)
		case SLIPEsc:
			dst = append(dst, SLIPEsc, SLIPEscEsc)
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, SLIPEnd)
}

// SLIPLen returns the framed length of pkt.
func SLIPLen(pkt []byte) int {
	n := 2 + len(pkt)
	for _, b := range pkt {
		if b == SLIPEnd || b == SLIPEsc {
			n++
		}
	}
	return n
}

// ErrBadEscape is a DB inside a packet followed by anything but DC or DD.
var ErrBadEscape = errors.New("esprom: SLIP escape DB followed by a byte other than DC or DD")

// ErrTooLong is a packet longer than MaxPacket.
var ErrTooLong = fmt.Errorf("esprom: SLIP packet longer than %d bytes", MaxPacket)

// SLIPDecoder splits a byte stream into packets. Bytes outside packets are
// dropped; an empty packet (C0 C0) is taken as the start of the next. The
// zero value is ready.
type SLIPDecoder struct {
	in      bool
	esc     bool
	bad     error
	buf     []byte
	Dropped int // bytes seen outside packets
}

// Feed takes one byte. It returns a packet when b ends one, or an error
// when b ends a malformed one (which is dropped). The packet is valid until
// the next call.
func (d *SLIPDecoder) Feed(b byte) ([]byte, error) {
	if !d.in {
		if b == SLIPEnd {
			d.in, d.esc, d.bad, d.buf = true, false, nil, d.buf[:0]
		} else {
			d.Dropped++
		}
		return nil, nil
	}
	if b == SLIPEnd {
		if len(d.buf) == 0 && d.bad == nil && !d.esc {
			return nil, nil // C0 C0: the end of nothing, the start of a packet
		}
		d.in = false
		err := d.bad
		if err == nil && d.esc {
			err = ErrBadEscape
		}
		if err != nil {
			return nil, err
		}
		return d.buf, nil
	}
	if d.bad != nil {
		return nil, nil
	}
	if d.esc {
		d.esc = false
		switch b {
		case SLIPEscEnd:
			b = SLIPEnd
		case SLIPEscEsc:
			b = SLIPEsc
		default:
			d.bad = ErrBadEscape
			return nil, nil
		}
	} else if b == SLIPEsc {
		d.esc = true
		return nil, nil
	}
	if len(d.buf) >= MaxPacket {
		d.bad = ErrTooLong
		return nil, nil
	}
	d.buf = append(d.buf, b)
	return nil, nil
}

// InPacket reports whether the decoder is inside a packet.
func (d *SLIPDecoder) InPacket() bool { return d.in }

// Request is a command packet.
type Request struct {
	Op       byte
	Checksum uint32
	Data     []byte
}

// AppendRequest appends the request packet (unframed).
func AppendRequest(dst []byte, op byte, checksum uint32, data []byte) []byte {
	dst = append(dst, 0x00, op)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(data)))
	dst = binary.LittleEndian.AppendUint32(dst, checksum)
	return append(dst, data...)
}

// DecodeRequest decodes a command packet.
func DecodeRequest(pkt []byte) (Request, error) {
	if len(pkt) < 8 {
		return Request{}, &ProtocolError{Msg: fmt.Sprintf("request of %d bytes, want at least 8", len(pkt))}
	}
	r := Request{Op: pkt[1], Checksum: binary.LittleEndian.Uint32(pkt[4:]), Data: pkt[8:]}
	if pkt[0] != 0x00 {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("direction byte 0x%02X, want 00 for a request", pkt[0])}
	}
	if n := int(binary.LittleEndian.Uint16(pkt[2:])); n != len(r.Data) {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("length field %d, but %d data bytes", n, len(r.Data))}
	}
	return r, nil
}

// Response is an answer packet with its status split off.
type Response struct {
	Op     byte
	Value  uint32
	Data   []byte // the data before the status bytes
	Status byte   // 0 ok, 1 failed
	Code   byte   // the error code when Status is not 0
}

// AppendResponse appends a response packet (unframed): data then the
// status bytes, statusLen of them (status, code, then zeros).
func AppendResponse(dst []byte, op byte, value uint32, data []byte, status, code byte, statusLen int) []byte {
	dst = append(dst, 0x01, op)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(data)+statusLen))
	dst = binary.LittleEndian.AppendUint32(dst, value)
	dst = append(dst, data...)
	st := make([]byte, statusLen)
	if statusLen >= 2 {
		st[0], st[1] = status, code
	}
	return append(dst, st...)
}

// DecodeResponse decodes a response packet whose data ends in statusLen
// status bytes (4 for the ESP32 ROM, 2 for the ESP8266 ROM; 0 means guess
// from the length: 4 when the data holds an even count of at least 4, as
// READ_REG's does on the ESP32). dataLen is the data the command returns
// before the status (32 for SPI_FLASH_MD5, 64 for READ_FLASH_SLOW), or -1
// to take whatever precedes the status.
func DecodeResponse(pkt []byte, statusLen, dataLen int) (Response, error) {
	if len(pkt) < 8 {
		return Response{}, &ProtocolError{Msg: fmt.Sprintf("response of %d bytes (% X), want at least 8", len(pkt), clip(pkt))}
	}
	r := Response{Op: pkt[1], Value: binary.LittleEndian.Uint32(pkt[4:])}
	if pkt[0] != 0x01 {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("direction byte 0x%02X, want 01 for a response", pkt[0])}
	}
	body := pkt[8:]
	if n := int(binary.LittleEndian.Uint16(pkt[2:])); n != len(body) {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("length field %d, but %d data bytes", n, len(body))}
	}
	if statusLen != 0 && statusLen != 2 && statusLen != 4 {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("%d status bytes asked for; the ROMs send 2 or 4", statusLen)}
	}
	if statusLen == 0 {
		statusLen = 2
		if dataLen >= 0 && len(body)-dataLen == 4 {
			statusLen = 4
		}
	}
	if len(body) < statusLen {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("%d data bytes cannot hold %d status bytes", len(body), statusLen)}
	}
	st := body[len(body)-statusLen:]
	r.Status, r.Code = st[0], st[1]
	r.Data = body[:len(body)-statusLen]
	if r.Status != 0 {
		// A failed command carries no data, whatever it would return.
		r.Data = r.Data[:0]
		return r, nil
	}
	if dataLen >= 0 && len(r.Data) != dataLen {
		return r, &ProtocolError{Op: r.Op, Msg: fmt.Sprintf("%d data bytes before the status, want %d", len(r.Data), dataLen)}
	}
	return r, nil
}

// Err returns a *ROMError when the response says the command failed.
func (r Response) Err(addr uint32) error {
	if r.Status == 0 {
		return nil
	}
	return &ROMError{Op: r.Op, Status: r.Status, Code: r.Code, Addr: addr}
}

// CodeText says what an error code means.
func CodeText(code byte) string {
	switch code {
	case CodeInvalidMessage:
		return "invalid message (a bad parameter or length, or a command this ROM does not have)"
	case CodeFailedToAct:
		return "failed to act on the message"
	case CodeBadCRC:
		return "the data checksum is wrong"
	case CodeFlashWrite:
		return "flash write error: the block read back different after programming"
	case CodeFlashRead:
		return "flash read error"
	case CodeReadLength:
		return "flash read length error"
	case CodeDeflate:
		return "deflate error: the compressed stream is corrupt"
	case CodeStubBadDataLen:
		return "flasher stub: bad data length"
	case CodeStubBadChecksum:
		return "flasher stub: the data checksum is wrong"
	case CodeStubBadBlockSize:
		return "flasher stub: bad block size"
	case CodeStubInvalidCommand:
		return "flasher stub: invalid command"
	case CodeStubFailedSPIOp:
		return "flasher stub: an SPI flash operation failed"
	case CodeStubFailedUnlock:
		return "flasher stub: the SPI flash could not be unlocked"
	case CodeStubNotInFlashMode:
		return "flasher stub: not in flash mode (no FLASH_BEGIN)"
	case CodeStubInflateError:
		return "flasher stub: inflate error"
	case CodeStubNotEnoughData:
		return "flasher stub: not enough data"
	case CodeStubTooMuchData:
		return "flasher stub: too much data"
	}
	return fmt.Sprintf("unknown error code 0x%02X", code)
}

func (e *ROMError) hint() string {
	switch e.Code {
	case CodeInvalidMessage:
		return "check the command is one this ROM offers (the ESP8266 ROM has no FLASH_DEFL_*, SPI_FLASH_MD5, CHANGE_BAUDRATE or SPI_ATTACH)"
	case CodeFailedToAct:
		return "the flash may not be attached or the region lies outside it; sync again and retry"
	case CodeBadCRC:
		return "bytes were lost or garbled on the line; retry the block, at a lower rate if it persists"
	case CodeFlashWrite:
		return "the sector was not erased or the flash is worn or write-protected; erase the region and write again"
	case CodeFlashRead, CodeReadLength:
		return "check the address and length lie inside the flash"
	case CodeDeflate:
		return "the stream was garbled in transit; start the write again from FLASH_DEFL_BEGIN"
	}
	return "power-cycle the unit into download mode and retry"
}

// ROMError says the ROM answered a command with a failure status.
type ROMError struct {
	Op     byte
	Status byte
	Code   byte
	Addr   uint32 // the flash address the command concerned, if any
}

func (e *ROMError) Error() string {
	at := ""
	if e.Addr != 0 || e.Op == OpFlashBegin || e.Op == OpFlashDeflBegin || e.Op == OpSPIFlashMD5 {
		at = fmt.Sprintf(" at 0x%06X", e.Addr)
	}
	return fmt.Sprintf("esprom: %s%s failed: %s (status %d, code 0x%02X); %s", OpName(e.Op), at, CodeText(e.Code), e.Status, e.Code, e.hint())
}

// ErrUnsupported matches (with errors.Is) a ROMError for a command the ROM
// does not have, and the client's refusals of commands the chip lacks.
var ErrUnsupported = errors.New("not supported by this ROM")

// Is makes errors.Is(err, ErrUnsupported) true for error 05 on commands a
// ROM may lack.
func (e *ROMError) Is(target error) bool {
	if target != ErrUnsupported || e.Code != CodeInvalidMessage {
		return false
	}
	switch e.Op {
	case OpFlashDeflBegin, OpFlashDeflData, OpFlashDeflEnd, OpSPIFlashMD5, OpChangeBaudrate, OpSPIAttach, OpReadFlashSlow, OpGetSecurityInfo:
		return true
	}
	return false
}

// ProtocolError is malformed traffic: a packet too short, a wrong
// direction byte, a length that does not match.
type ProtocolError struct {
	Op  byte
	Msg string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("esprom: %s: %s; reset the unit into download mode and sync again", OpName(e.Op), e.Msg)
}

// VerifyError is a region whose MD5 on the unit differs from the image's.
type VerifyError struct {
	Addr, Size uint32
	Want, Got  string // MD5s, 32 hex digits
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("esprom: verify 0x%06X+%d: MD5 on the unit %s, image %s; write the region again (it was not erased, or the flash is worn)", e.Addr, e.Size, e.Got, e.Want)
}

// UnknownChipError is a detect word no known family has.
type UnknownChipError struct{ Magic uint32 }

func (e *UnknownChipError) Error() string {
	return fmt.Sprintf("esprom: unknown chip, detect word 0x%08X at 0x%08X (ESP32 0x%08X, ESP8266 0x%08X); newer chips need GET_SECURITY_INFO", e.Magic, ChipDetectReg, ESP32.Magic, ESP8266.Magic)
}

// FormatMAC formats a MAC as six colon-separated upper-case hex bytes.
func FormatMAC(mac [6]byte) string {
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
}

// DecodeMAC builds the MAC from the words at chip.MACRegs, as the ROM's
// own code and esptool read it:
//
//   - ESP32: eFuse BLK0 words 1 and 2; the MAC is the low 16 bits of word 2
//     then word 1, most significant byte first (word 2's top byte is a CRC).
//   - ESP8266: OTP words MAC0, MAC1, MAC3; the OUI is in MAC3 or, when it is
//     zero, chosen by a byte of MAC1 (18:FE:34 or AC:D0:74).
func DecodeMAC(chip Chip, words []uint32) ([6]byte, error) {
	var mac [6]byte
	if len(words) != len(chip.MACRegs) {
		return mac, fmt.Errorf("esprom: %s MAC needs %d words, got %d", chip.Name, len(chip.MACRegs), len(words))
	}
	switch chip.Magic {
	case ESP32.Magic:
		w1, w2 := words[0], words[1]
		mac = [6]byte{byte(w2 >> 8), byte(w2), byte(w1 >> 24), byte(w1 >> 16), byte(w1 >> 8), byte(w1)}
	case ESP8266.Magic:
		mac0, mac1, mac3 := words[0], words[1], words[2]
		switch {
		case mac3 != 0:
			mac[0], mac[1], mac[2] = byte(mac3>>16), byte(mac3>>8), byte(mac3)
		case byte(mac1>>16) == 0:
			mac[0], mac[1], mac[2] = 0x18, 0xFE, 0x34
		case byte(mac1>>16) == 1:
			mac[0], mac[1], mac[2] = 0xAC, 0xD0, 0x74
		default:
			return mac, fmt.Errorf("esprom: ESP8266 OTP holds an unknown OUI code %d (MAC1 0x%08X)", byte(mac1>>16), mac1)
		}
		mac[3], mac[4], mac[5] = byte(mac1>>8), byte(mac1), byte(mac0>>24)
	default:
		return mac, fmt.Errorf("esprom: no MAC layout for %s", chip.Name)
	}
	return mac, nil
}

// EncodeMAC returns the words at chip.MACRegs that DecodeMAC turns into
// mac; crc is the ESP32's eFuse CRC byte. Device models use it.
func EncodeMAC(chip Chip, mac [6]byte, crc byte) []uint32 {
	switch chip.Magic {
	case ESP32.Magic:
		w1 := uint32(mac[2])<<24 | uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])
		w2 := uint32(crc)<<16 | uint32(mac[0])<<8 | uint32(mac[1])
		return []uint32{w1, w2}
	case ESP8266.Magic:
		mac0 := uint32(mac[5]) << 24
		mac1 := uint32(mac[3])<<8 | uint32(mac[4])
		mac3 := uint32(mac[0])<<16 | uint32(mac[1])<<8 | uint32(mac[2])
		return []uint32{mac0, mac1, mac3}
	}
	return nil
}

// ESP8266EraseSize returns the erase size to put in FLASH_BEGIN so that the
// ESP8266 ROM, which erases too much, erases the sectors [offset,
// offset+size) covers (and, for a small odd count, one more). ROMErased
// says what the ROM then erases.
func ESP8266EraseSize(offset, size uint32) uint32 {
	const perBlock = 16
	n := (size + SectorSize - 1) / SectorSize
	head := perBlock - (offset/SectorSize)%perBlock
	if n < head {
		head = n
	}
	if n < 2*head {
		return (n + 1) / 2 * SectorSize
	}
	return (n - head) * SectorSize
}

// ESP8266Erased returns the sectors the ESP8266 ROM erases, from offset's
// sector on, when FLASH_BEGIN asks it to erase size bytes: twice the
// request when it is less than the sectors left in the first 64 KiB block,
// else the request plus those sectors.
func ESP8266Erased(offset, size uint32) uint32 {
	const perBlock = 16
	n := (size + SectorSize - 1) / SectorSize
	head := perBlock - (offset/SectorSize)%perBlock
	if n < head {
		return 2 * n
	}
	return n + head
}

// clip keeps error messages short.
func clip(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}
