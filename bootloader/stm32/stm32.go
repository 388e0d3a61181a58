// Package stm32 is a client for the system bootloader that ST burns into the
// ROM of every STM32, as it speaks over a USART: ST application note AN3155,
// "USART protocol used in the STM32 bootloader"
// (https://www.st.com/resource/en/application_note/an3155-usart-protocol-used-in-the-stm32-bootloader-stmicroelectronics.pdf).
// Which part has which bootloader version, memory map and reserved RAM is in
// AN2606, "STM32 microcontroller system memory boot mode"
// (https://www.st.com/resource/en/application_note/an2606-stm32-microcontroller-system-memory-boot-mode-stmicroelectronics.pdf).
//
// The link is 8E1. The bootloader measures the rate of the first byte, which
// must be 0x7F, and answers ACK (0x79); from then on every exchange is
// stop-and-wait: the host sends a few bytes and waits for ACK or NACK (0x1F).
// Every command is its code and the code's complement; an address is four
// bytes, most significant first, and their XOR:
//
//	host: 7F                         sync (the ROM autobauds on it)
//	unit: 79                         ACK
//	host: 00 FF                      GET
//	unit: 79 0B 22 00 01 02 11 21 31 43 63 73 82 92 79
//	      ACK, N=11, version 2.2, 11 command codes, ACK
//	host: 02 FD                      GET_ID
//	unit: 79 01 04 10 79             ACK, N=1, PID 0x0410, ACK
//	host: 11 EE                      READ
//	unit: 79
//	host: 1F FF F7 E8 FF             address 0x1FFFF7E8 and its XOR
//	unit: 79
//	host: 0B F4                      length-1 = 11 and its complement
//	unit: 79 <12 bytes>              ACK, the unique ID
//	host: 31 CE                      WRITE
//	unit: 79
//	host: 08 00 01 00 09             address 0x08000100
//	unit: 79
//	host: 03 DE AD BE EF 21          length-1 = 3, 4 bytes, XOR of all five
//	unit: 79                         sent once the flash is programmed
//	host: 44 BB                      EXTENDED ERASE
//	unit: 79
//	host: 00 01 00 00 00 01 00       N-1 = 1: sectors 0 and 1, XOR of all
//	unit: 79                         sent once the sectors are erased
//
// What the ROM does, and what this client therefore does:
//
//   - The ROM frames 8E1. A port at 8N1 gets the sync byte through and its
//     ACK back (both have an odd count of ones, so their parity bit reads
//     as a stop bit) and then no answer to GET: Get says to check the
//     parity.
//
//   - The ROM times the first frame it sees as 0x7F and keeps that rate
//     until reset: garbage before the sync byte leaves it deaf. Sync calls
//     the Reset hook (the unit's entry sequence) before every attempt after
//     the first.
//
//   - Some ROMs NACK READs of the unique ID (AN2606): Identify tries a
//     256-byte window around it, then reports no ID from the ROM (NoUID)
//     for the caller to identify the unit otherwise.
//
//   - GET_CHECKSUM (0xA1), where GET lists it, lets Verify compare a CRC
//     instead of reading everything back; parts without a mass erase (the
//     L0 and L1) are erased page by page.
//
//   - A bootloader that is already synced takes a further 0x7F as the first
//     byte of a command and waits for its complement; a second 0x7F then
//     fails the complement check and is answered NACK. Sync treats that NACK
//     as synced, as stm32flash does.
//
//   - Flash must be erased before it is written: programming can only clear
//     bits, and the ROM answers ACK whatever it programmed. Only reading
//     back (Verify) shows a write over old data. The F1 and F4
//     bootloaders have no checksum command.
//
//   - Older bootloaders (v2.x on the F1) erase with ERASE (0x43, one-byte page
//     numbers); newer ones (v3.x on the F4) with EXTENDED ERASE (0x44,
//     two-byte numbers). GET says which; the client uses the one offered.
//
//   - Readout protection (RDP level 1) makes the ROM NACK READ, WRITE, ERASE
//     and GO. The unique ID, the unit's serial number, then cannot be read.
//     READOUT_UNPROTECT mass-erases the flash, clears the protection and
//     resets the unit; the client syncs again afterwards.
//
// The client never opens a port: it takes a bootloader.Port.
package stm32

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Answer bytes.
const (
	ACK  = 0x79
	NACK = 0x1F
	// BUSY is sent by some bootloaders while a long operation runs; the
	// host keeps waiting for ACK or NACK.
	BUSY = 0x76
	// SyncByte is the first byte after reset: the ROM measures the line
	// rate on it and answers ACK.
	SyncByte = 0x7F
)

// Command codes (AN3155, "Bootloader command set").
const (
	CmdGet              = 0x00
	CmdGetVersion       = 0x01
	CmdGetID            = 0x02
	CmdRead             = 0x11
	CmdGo               = 0x21
	CmdWrite            = 0x31
	CmdErase            = 0x43
	CmdExtendedErase    = 0x44
	CmdWriteProtect     = 0x63
	CmdWriteUnprotect   = 0x73
	CmdReadoutProtect   = 0x82
	CmdReadoutUnprotect = 0x92
	// CmdGetChecksum asks the ROM for the CRC of a memory range, where the
	// bootloader has it (GET lists it): address, then length in bytes,
	// each four bytes and their XOR, answered ACK, ACK, ACK, then the CRC
	// most significant byte first and its XOR (stm32flash 0.7, stm32.c,
	// stm32_crc_memory).
	CmdGetChecksum = 0xA1
)

// Special erase codes. ERASE takes FF 00 for a global erase; EXTENDED ERASE
// takes a two-byte code and its checksum.
const (
	GlobalErase = 0xFF   // ERASE: N-1 = 0xFF means "everything"
	MassErase   = 0xFFFF // EXTENDED ERASE: mass erase
	Bank1Erase  = 0xFFFE // EXTENDED ERASE: bank 1 (dual-bank parts)
	Bank2Erase  = 0xFFFD // EXTENDED ERASE: bank 2 (dual-bank parts)
)

// MaxBlock is the most bytes one READ or WRITE moves.
const MaxBlock = 256

// Stages name where in a command the unit answered, for NACKError.
const (
	StageCommand  = "command"  // the ACK to the command code
	StageAddress  = "address"  // the ACK to the address
	StageLength   = "length"   // the ACK to READ's or GET_CHECKSUM's length
	StageChecksum = "checksum" // the ACK once GET_CHECKSUM has computed
	StageData     = "data"     // the ACK after WRITE's data (flash programmed)
	StagePages    = "pages"    // the ACK after the erase or protect list (work done)
	StageComplete = "complete" // the second ACK of the protection commands
	StageAnswer   = "answer"   // the ACK ending GET, GET_VERSION or GET_ID
)

// CmdName names a command code as AN3155 does.
func CmdName(c byte) string {
	switch c {
	case CmdGet:
		return "GET"
	case CmdGetVersion:
		return "GET_VERSION"
	case CmdGetID:
		return "GET_ID"
	case CmdRead:
		return "READ"
	case CmdGo:
		return "GO"
	case CmdWrite:
		return "WRITE"
	case CmdErase:
		return "ERASE"
	case CmdExtendedErase:
		return "EXTENDED_ERASE"
	case CmdWriteProtect:
		return "WRITE_PROTECT"
	case CmdWriteUnprotect:
		return "WRITE_UNPROTECT"
	case CmdReadoutProtect:
		return "READOUT_PROTECT"
	case CmdReadoutUnprotect:
		return "READOUT_UNPROTECT"
	case CmdGetChecksum:
		return "GET_CHECKSUM"
	case SyncByte:
		return "SYNC"
	}
	return fmt.Sprintf("command 0x%02X", c)
}

// hasAddress reports whether cmd carries an address worth naming in errors.
func hasAddress(cmd byte) bool {
	return cmd == CmdRead || cmd == CmdWrite || cmd == CmdGo || cmd == CmdGetChecksum
}

// FormatVersion formats a bootloader version byte: 0x22 is "2.2".
func FormatVersion(v byte) string { return fmt.Sprintf("%d.%d", v>>4, v&0x0F) }

// ErrReadProtected matches (with errors.Is) a NACKError that read
// protection causes: the ROM NACKs READ, WRITE, ERASE and GO right after the
// command code while RDP level 1 is set.
var ErrReadProtected = errors.New("flash read-protected (RDP level 1)")

// NACKError says the unit answered NACK: it understood the traffic and
// refused.
type NACKError struct {
	Cmd   byte
	Stage string // StageCommand, StageAddress, ...
	Addr  uint32 // the address, for READ, WRITE and GO
}

// readProtectedCmd reports whether read protection makes the ROM refuse cmd.
func readProtectedCmd(cmd byte) bool {
	switch cmd {
	case CmdRead, CmdWrite, CmdErase, CmdExtendedErase, CmdGo, CmdWriteProtect, CmdReadoutProtect:
		return true
	}
	return false
}

func (e *NACKError) Error() string {
	return fmt.Sprintf("stm32: %s: NACK at the %s stage; %s", opName(e.Cmd, e.Addr), e.Stage, e.hint())
}

func (e *NACKError) hint() string {
	switch {
	case e.Stage == StageCommand && readProtectedCmd(e.Cmd):
		return "the flash is read-protected (RDP level 1), or the bootloader does not offer the command; READOUT_UNPROTECT clears the protection and mass-erases the flash"
	case e.Stage == StageCommand:
		return "the bootloader does not offer this command (see GET)"
	case e.Stage == StageAddress && e.Cmd == CmdRead:
		return "the address is outside flash, RAM, system memory and option bytes"
	case e.Stage == StageAddress && e.Cmd == CmdWrite:
		return "the address is outside writable flash and RAM, or not 4-aligned"
	case e.Stage == StageAddress && e.Cmd == CmdGo:
		return "the address is outside flash and RAM"
	case e.Cmd == CmdGetChecksum && (e.Stage == StageAddress || e.Stage == StageLength):
		return "the range is not 4-aligned or runs outside the flash; verify by reading back instead"
	case e.Stage == StageAddress:
		return "the address checksum or range was refused"
	case e.Stage == StageLength:
		return "the length runs past the end of the memory region"
	case e.Stage == StageData:
		return "the data checksum was wrong, or the flash did not program (a write-protected sector?); retry the block"
	case e.Stage == StagePages:
		return "the checksum was wrong, a page or sector number is out of range, or a sector is write-protected"
	case e.Stage == StageComplete:
		return "the operation failed on the unit; power-cycle it and retry"
	}
	return "the unit refused"
}

// Is makes errors.Is(err, ErrReadProtected) true for the NACKs read
// protection causes.
func (e *NACKError) Is(target error) bool {
	return target == ErrReadProtected && e.Stage == StageCommand && readProtectedCmd(e.Cmd)
}

// ProtocolError is malformed traffic: a byte other than ACK or NACK where
// one was due, or an answer of the wrong length.
type ProtocolError struct {
	Cmd byte
	Msg string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("stm32: %s: %s; resynchronise (reset into the bootloader and Sync) and retry", CmdName(e.Cmd), e.Msg)
}

// VerifyError is a read-back that differs from what was written.
type VerifyError struct {
	Addr uint32 // first differing address
	Want byte
	Got  byte
}

func (e *VerifyError) Error() string {
	hint := "write the block again; if it persists the flash is worn"
	if e.Got&e.Want != e.Want {
		// Some bit that should be 1 reads 0: programming cannot set bits.
		hint = "bits that should be 1 read 0: the page or sector was not erased before it was written; erase it and write again"
	}
	return fmt.Sprintf("stm32: verify: byte at 0x%08X is 0x%02X, want 0x%02X; %s", e.Addr, e.Got, e.Want, hint)
}

// UnknownPartError is a PID that is not in the part table.
type UnknownPartError struct {
	PID uint16
}

func (e *UnknownPartError) Error() string {
	return fmt.Sprintf("stm32: unknown part, PID 0x%03X; add it to the part table from AN2606", e.PID)
}

// opName names an operation for errors: "WRITE at 0x08000100".
func opName(cmd byte, addr uint32) string {
	if hasAddress(cmd) {
		return fmt.Sprintf("%s at 0x%08X", CmdName(cmd), addr)
	}
	return CmdName(cmd)
}

// xor returns the XOR of b, the checksum AN3155 uses everywhere.
func xor(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// AppendCommand appends a command code and its complement.
func AppendCommand(b []byte, cmd byte) []byte { return append(b, cmd, ^cmd) }

// AppendAddress appends addr as AN3155 sends it: four bytes, most
// significant first, then their XOR.
func AppendAddress(b []byte, addr uint32) []byte {
	a := [4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}
	return append(b, a[0], a[1], a[2], a[3], xor(a[:]))
}

// DecodeAddress decodes an address frame (four bytes and their XOR) and
// reports whether its checksum is right.
func DecodeAddress(b [5]byte) (addr uint32, ok bool) {
	addr = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return addr, xor(b[:4]) == b[4]
}

// AppendWriteData appends WRITE's data frame: length-1, the data and the
// XOR of both. data must hold 1 to 256 bytes.
func AppendWriteData(b []byte, data []byte) []byte {
	n := byte(len(data) - 1)
	b = append(b, n)
	b = append(b, data...)
	return append(b, n^xor(data))
}

// AppendErase appends ERASE's page list: N-1, the page numbers (one byte
// each) and the XOR of all. It refuses what ERASE cannot carry: no pages,
// more than 255 (N-1 = 0xFF means a global erase), or a page above 255.
func AppendErase(b []byte, pages []int) ([]byte, error) {
	if len(pages) == 0 || len(pages) > 255 {
		return b, fmt.Errorf("stm32: ERASE of %d pages: send 1 to 255 per command", len(pages))
	}
	start := len(b)
	b = append(b, byte(len(pages)-1))
	for _, p := range pages {
		if p < 0 || p > 0xFF {
			return b[:start], fmt.Errorf("stm32: ERASE cannot name page %d (one-byte page numbers)", p)
		}
		b = append(b, byte(p))
	}
	return append(b, xor(b[start:])), nil
}

// AppendExtendedErase appends EXTENDED ERASE's list: N-1 in two bytes, the
// page numbers in two bytes each, and the XOR of all.
func AppendExtendedErase(b []byte, pages []int) ([]byte, error) {
	if len(pages) == 0 || len(pages) > 0xFFF0 {
		return b, fmt.Errorf("stm32: EXTENDED_ERASE of %d pages: send 1 to 65520 per command", len(pages))
	}
	start := len(b)
	n := len(pages) - 1
	b = append(b, byte(n>>8), byte(n))
	for _, p := range pages {
		if p < 0 || p > 0xFFFF {
			return b[:start], fmt.Errorf("stm32: EXTENDED_ERASE cannot name page %d", p)
		}
		b = append(b, byte(p>>8), byte(p))
	}
	return append(b, xor(b[start:])), nil
}

// AppendSpecialErase appends an EXTENDED ERASE special code (MassErase,
// Bank1Erase, Bank2Erase) and its checksum.
func AppendSpecialErase(b []byte, code uint16) []byte {
	hi, lo := byte(code>>8), byte(code)
	return append(b, hi, lo, hi^lo)
}

// EncodeGet returns the answer to GET after its first ACK: N (the number
// of command codes), the version, the codes, and the closing ACK.
func EncodeGet(version byte, cmds []byte) []byte {
	b := make([]byte, 0, len(cmds)+3)
	b = append(b, byte(len(cmds)), version)
	b = append(b, cmds...)
	return append(b, ACK)
}

// DecodeGet decodes the answer to GET after its first ACK (see EncodeGet).
// N counts the bytes that follow less one, so it equals the number of
// command codes:
//
//	0B 22 00 01 02 11 21 31 43 63 73 82 92 79
func DecodeGet(b []byte) (version byte, cmds []byte, err error) {
	if len(b) < 3 {
		return 0, nil, &ProtocolError{Cmd: CmdGet, Msg: fmt.Sprintf("answer of %d bytes (% X), want at least 3", len(b), b)}
	}
	n := int(b[0])
	if len(b) != n+3 {
		return 0, nil, &ProtocolError{Cmd: CmdGet, Msg: fmt.Sprintf("answer of %d bytes, want %d for N=%d", len(b), n+3, n)}
	}
	if err := final(CmdGet, b[len(b)-1]); err != nil {
		return 0, nil, err
	}
	return b[1], append([]byte(nil), b[2:n+2]...), nil
}

// EncodeVersion returns the answer to GET_VERSION after its first ACK: the
// version, two option bytes, and the closing ACK.
func EncodeVersion(version, opt1, opt2 byte) []byte { return []byte{version, opt1, opt2, ACK} }

// DecodeVersion decodes the answer to GET_VERSION after its first ACK:
//
//	31 00 00 79     version 3.1, option bytes 00 00
func DecodeVersion(b []byte) (version, opt1, opt2 byte, err error) {
	if len(b) != 4 {
		return 0, 0, 0, &ProtocolError{Cmd: CmdGetVersion, Msg: fmt.Sprintf("answer of %d bytes (% X), want 4", len(b), b)}
	}
	if err := final(CmdGetVersion, b[3]); err != nil {
		return 0, 0, 0, err
	}
	return b[0], b[1], b[2], nil
}

// EncodeID returns the answer to GET_ID after its first ACK: N=1, the PID
// most significant byte first, and the closing ACK.
func EncodeID(pid uint16) []byte { return []byte{1, byte(pid >> 8), byte(pid), ACK} }

// DecodeID decodes the answer to GET_ID after its first ACK:
//
//	01 04 13 79     PID 0x0413
//
// Bootloaders that send more than two PID bytes (N > 1) are accepted, as
// stm32flash accepts them: the PID is the first two.
func DecodeID(b []byte) (uint16, error) {
	if len(b) < 1 {
		return 0, &ProtocolError{Cmd: CmdGetID, Msg: "empty answer"}
	}
	n := int(b[0])
	if n < 1 {
		return 0, &ProtocolError{Cmd: CmdGetID, Msg: fmt.Sprintf("N=%d: a PID needs two bytes", n)}
	}
	if len(b) != n+3 {
		return 0, &ProtocolError{Cmd: CmdGetID, Msg: fmt.Sprintf("answer of %d bytes, want %d for N=%d", len(b), n+3, n)}
	}
	if err := final(CmdGetID, b[len(b)-1]); err != nil {
		return 0, err
	}
	return uint16(b[1])<<8 | uint16(b[2]), nil
}

// final checks the ACK that closes an answer.
func final(cmd byte, b byte) error {
	switch b {
	case ACK:
		return nil
	case NACK:
		return &NACKError{Cmd: cmd, Stage: StageAnswer}
	}
	return &ProtocolError{Cmd: cmd, Msg: fmt.Sprintf("answer ends with 0x%02X where ACK was due", b)}
}

// ErrIncomplete is returned by DecodeAck when the stream ends before ACK or
// NACK.
var ErrIncomplete = errors.New("stm32: answer incomplete")

// DecodeAck reads the answer where an ACK was due from the start of
// stream: any number of BUSY bytes, then ACK or NACK. It returns how many
// bytes it consumed and nil for ACK, a *NACKError for NACK, a
// *ProtocolError for any other byte, or ErrIncomplete when stream ends
// first (all of it consumed).
//
//	76 76 79    BUSY, BUSY, ACK: 3 bytes, nil
func DecodeAck(cmd byte, stage string, addr uint32, stream []byte) (int, error) {
	for i, b := range stream {
		switch b {
		case BUSY:
			continue
		case ACK:
			return i + 1, nil
		case NACK:
			return i + 1, &NACKError{Cmd: cmd, Stage: stage, Addr: addr}
		default:
			return i + 1, &ProtocolError{Cmd: cmd, Msg: fmt.Sprintf("%s: got 0x%02X where ACK or NACK was due after the %s", opName(cmd, addr), b, stage)}
		}
	}
	return len(stream), ErrIncomplete
}

// syncVerdict judges what arrived after the sync byte once the line went
// quiet: the unit is synced when the last byte is ACK or NACK. Bytes before
// it are garbage (an application's output, noise while the unit reset);
// text that merely contains 0x79 ("ready") does not end with it.
func syncVerdict(b []byte) (answer byte, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	last := b[len(b)-1]
	return last, last == ACK || last == NACK
}

// CRC32 returns the CRC GET_CHECKSUM computes over data, whose length must
// be a multiple of 4: CRC-32 with the polynomial 0x04C11DB7, initial value
// 0xFFFFFFFF, no final XOR, fed one little-endian 32-bit word at a time,
// most significant bit first (the STM32 CRC unit's defaults; stm32flash
// 0.7, stm32.c, stm32_sw_crc).
func CRC32(data []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for i := 0; i+4 <= len(data); i += 4 {
		crc ^= uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		for range 32 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04C11DB7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// AppendLength appends a GET_CHECKSUM length: four bytes, most
// significant first, and their XOR, as an address.
func AppendLength(b []byte, n uint32) []byte { return AppendAddress(b, n) }

// FormatUID formats a 96-bit unique ID as 24 upper-case hex digits, bytes
// in address order.
func FormatUID(uid [12]byte) string { return strings.ToUpper(hex.EncodeToString(uid[:])) }
