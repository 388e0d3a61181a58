package firmware

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
)

// Intel HEX record types.
const (
	recData        = 0x00 // data at the current base + offset
	recEOF         = 0x01 // end of file
	recExtSegment  = 0x02 // extended segment address: base = value << 4
	recStartSeg    = 0x03 // start segment address (CS:IP)
	recExtLinear   = 0x04 // extended linear address: base = value << 16
	recStartLinear = 0x05 // start linear address (EIP)
)

// HexError is a malformed Intel HEX file: the line (from 1) and what is wrong
// with it.
type HexError struct {
	Line int
	Err  error
}

func (e *HexError) Error() string { return fmt.Sprintf("intel hex line %d: %v", e.Line, e.Err) }
func (e *HexError) Unwrap() error { return e.Err }

// Intel HEX problems, wrapped in a HexError.
var (
	ErrHexChecksum = errors.New("checksum mismatch")
	ErrHexNoEOF    = errors.New("no end-of-file record (type 01): the file is truncated")
)

// ParseHex parses an Intel HEX file: records 00 to 05, each checked against
// its checksum, ending with an end-of-file record. Lines may end in LF or
// CRLF; blank lines are allowed, anything after the end-of-file record is
// not.
func ParseHex(data []byte) (*Image, error) {
	im := &Image{Format: Hex}
	var segs []Segment
	var base uint32
	eof := false
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimRight(l, "\r \t")
		if len(l) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return &HexError{Line: line, Err: fmt.Errorf(format, args...)}
		}
		if eof {
			return nil, fail("data after the end-of-file record")
		}
		if l[0] != ':' {
			return nil, fail("record does not start with ':'")
		}
		if len(l)%2 != 1 || len(l) < 11 {
			return nil, fail("record of %d characters: want ':' and an even number of hex digits, at least 10", len(l))
		}
		rec := make([]byte, (len(l)-1)/2)
		if _, err := hex.Decode(rec, l[1:]); err != nil {
			return nil, fail("%v", err)
		}
		n := int(rec[0])
		if len(rec) != n+5 {
			return nil, fail("byte count %d, but the record holds %d data bytes", n, len(rec)-5)
		}
		var sum byte
		for _, b := range rec {
			sum += b
		}
		if sum != 0 {
			want := -(sum - rec[len(rec)-1])
			return nil, &HexError{Line: line, Err: fmt.Errorf("%w: the record says 0x%02X, its bytes give 0x%02X", ErrHexChecksum, rec[len(rec)-1], want)}
		}
		off := uint32(rec[1])<<8 | uint32(rec[2])
		typ, payload := rec[3], rec[4:4+n]
		switch typ {
		case recData:
			segs = append(segs, Segment{Addr: base + off, Data: payload})
			if uint64(base)+uint64(off)+uint64(n) > 1<<32 {
				return nil, fail("data at 0x%08X runs past the 32-bit address space", base+off)
			}
		case recEOF:
			if n != 0 {
				return nil, fail("end-of-file record with %d data bytes", n)
			}
			eof = true
		case recExtSegment, recExtLinear:
			if n != 2 || off != 0 {
				return nil, fail("record type %02X wants 2 data bytes and offset 0000", typ)
			}
			v := uint32(payload[0])<<8 | uint32(payload[1])
			if typ == recExtSegment {
				base = v << 4
			} else {
				base = v << 16
			}
		case recStartSeg, recStartLinear:
			if n != 4 {
				return nil, fail("record type %02X wants 4 data bytes", typ)
			}
			v := uint32(payload[0])<<24 | uint32(payload[1])<<16 | uint32(payload[2])<<8 | uint32(payload[3])
			if typ == recStartSeg {
				v = (v>>16)<<4 + v&0xFFFF // CS:IP
			}
			im.Entry = v
		default:
			return nil, fail("unknown record type %02X", typ)
		}
	}
	if !eof {
		return nil, &HexError{Line: line, Err: ErrHexNoEOF}
	}
	var err error
	if im.Segments, err = normalize(segs); err != nil {
		return nil, err
	}
	return im, nil
}

// FormatHex writes segments as Intel HEX with 16-byte data records and
// extended linear address records, ending with the start address (if
// entry is not 0) and the end-of-file record.
func FormatHex(segs []Segment, entry uint32) []byte {
	var out bytes.Buffer
	rec := func(typ byte, off uint16, data []byte) {
		b := append([]byte{byte(len(data)), byte(off >> 8), byte(off), typ}, data...)
		var sum byte
		for _, x := range b {
			sum += x
		}
		b = append(b, -sum)
		out.WriteByte(':')
		out.WriteString(fmt.Sprintf("%X", b))
		out.WriteString("\n")
	}
	upper := uint32(0)
	for _, s := range segs {
		for i := 0; i < len(s.Data); {
			a := s.Addr + uint32(i)
			if a>>16 != upper {
				upper = a >> 16
				rec(recExtLinear, 0, []byte{byte(upper >> 8), byte(upper)})
			}
			n := min(16, len(s.Data)-i, int(0x10000-(a&0xFFFF)))
			rec(recData, uint16(a), s.Data[i:i+n])
			i += n
		}
	}
	if entry != 0 {
		rec(recStartLinear, 0, []byte{byte(entry >> 24), byte(entry >> 16), byte(entry >> 8), byte(entry)})
	}
	rec(recEOF, 0, nil)
	return out.Bytes()
}
