package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Segment is a run of bytes to be written at an address.
type Segment struct {
	Addr uint32
	Data []byte
}

// End returns the first address after the segment.
func (s Segment) End() uint64 { return uint64(s.Addr) + uint64(len(s.Data)) }

// Format names an image file's format.
type Format string

// Image file formats.
const (
	Raw Format = "raw" // the bytes as they are, at an address given separately
	Hex Format = "hex" // Intel HEX
	ELF Format = "elf" // an ELF executable: its PT_LOAD segments at their physical addresses
)

// Image is a loaded image: its segments in address order, none
// overlapping, adjacent ones merged.
type Image struct {
	Format   Format
	Segments []Segment
	// Entry is the start address the file names (HEX record 03 or 05, ELF
	// e_entry), or 0.
	Entry uint32
}

// MaxFlat is the largest span Flatten fills: a file whose segments lie
// further apart is almost certainly built for another memory map.
const MaxFlat = 256 << 20

// ErrEmpty is returned for an image without a single byte to write.
var ErrEmpty = errors.New("firmware: the image has no bytes to write")

// Bounds returns the first address the image writes and the first address
// after its last byte. An empty image returns 0, 0.
func (im *Image) Bounds() (start uint32, end uint64) {
	if len(im.Segments) == 0 {
		return 0, 0
	}
	return im.Segments[0].Addr, im.Segments[len(im.Segments)-1].End()
}

// Size returns the number of bytes the segments hold (not the span).
func (im *Image) Size() int {
	n := 0
	for _, s := range im.Segments {
		n += len(s.Data)
	}
	return n
}

// Flatten returns the image as one contiguous run from its first address to
// its last, the gaps between segments filled with fill (0xFF for NOR flash,
// which is what an erased page reads).
func (im *Image) Flatten(fill byte) (addr uint32, data []byte, err error) {
	start, end := im.Bounds()
	if end == 0 {
		return 0, nil, ErrEmpty
	}
	span := end - uint64(start)
	if span > MaxFlat {
		return 0, nil, fmt.Errorf("firmware: the image spans 0x%08X-0x%08X (%d MiB), more than the %d MiB one flash can hold: is it built for this part?",
			start, end-1, span>>20, MaxFlat>>20)
	}
	data = bytes.Repeat([]byte{fill}, int(span))
	for _, s := range im.Segments {
		copy(data[s.Addr-start:], s.Data)
	}
	return start, data, nil
}

// normalize sorts the segments, drops empty ones, merges adjacent ones and
// reports the first overlap.
func normalize(segs []Segment) ([]Segment, error) {
	var in []Segment
	for _, s := range segs {
		if len(s.Data) > 0 {
			in = append(in, s)
		}
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].Addr < in[j].Addr })
	var out []Segment
	for _, s := range in {
		if s.End() > 1<<32 {
			return nil, fmt.Errorf("firmware: a segment at 0x%08X of %d bytes runs past the 32-bit address space", s.Addr, len(s.Data))
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			switch {
			case uint64(s.Addr) < last.End():
				return nil, fmt.Errorf("firmware: data at 0x%08X overlaps data already at 0x%08X-0x%08X", s.Addr, last.Addr, last.End()-1)
			case uint64(s.Addr) == last.End():
				last.Data = append(last.Data, s.Data...) // out owns its segments' bytes
				continue
			}
		}
		out = append(out, Segment{Addr: s.Addr, Data: append([]byte(nil), s.Data...)})
	}
	return out, nil
}

// ParseRaw returns a raw binary as an image at addr.
func ParseRaw(data []byte, addr uint32) (*Image, error) {
	segs, err := normalize([]Segment{{Addr: addr, Data: data}})
	if err != nil {
		return nil, err
	}
	return &Image{Format: Raw, Segments: segs}, nil
}

// Detect tells a file's format from its content alone: the ELF magic is
// ELF; text whose first record (after blank lines) is a well-formed Intel
// HEX record with a good checksum is Intel HEX; anything else is raw.
func Detect(data []byte) Format {
	if bytes.HasPrefix(data, []byte("\x7fELF")) {
		return ELF
	}
	rest := bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF")) // a UTF-8 byte order mark
	for len(rest) > 0 {
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if hexRecord(line) {
			return Hex
		}
		return Raw
	}
	return Raw
}

// hexRecord reports whether line is one well-formed Intel HEX record:
// ':', an even number of hex digits giving count, address, type, count
// data bytes and a checksum that sums the record to zero.
func hexRecord(line []byte) bool {
	if len(line) < 11 || line[0] != ':' || len(line)%2 != 1 {
		return false
	}
	b := make([]byte, (len(line)-1)/2)
	if _, err := hex.Decode(b, line[1:]); err != nil {
		return false
	}
	if int(b[0])+5 != len(b) || b[3] > recStartLinear {
		return false
	}
	var sum byte
	for _, c := range b {
		sum += c
	}
	return sum == 0
}

// FormatOf tells a file's format from its content (see Detect), and only
// for content that looks raw from its name: a file named .hex or .elf that
// is not is parsed as such, so that the parser says what is wrong with it
// rather than writing its text as bytes.
func FormatOf(name string, data []byte) Format {
	if f := Detect(data); f != Raw {
		return f
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".hex", ".ihex", ".ihx":
		return Hex
	case ".elf", ".axf":
		return ELF
	}
	return Raw
}

// Parse loads data in format f ("" tells it from the content, then the
// name: see FormatOf). addr
// places a raw image; for HEX and ELF the file carries its addresses and
// addr is ignored.
func Parse(name string, data []byte, f Format, addr uint32) (*Image, error) {
	if f == "" {
		f = FormatOf(name, data)
	}
	switch f {
	case Raw:
		return ParseRaw(data, addr)
	case Hex:
		return ParseHex(data)
	case ELF:
		return ParseELF(data)
	}
	return nil, fmt.Errorf("firmware: %s: unknown format %q (want raw, hex or elf)", name, f)
}

// LoadFile reads and parses the file at path (see Parse).
func LoadFile(path string, f Format, addr uint32) (*Image, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	im, err := Parse(path, data, f, addr)
	if err != nil {
		return nil, data, fmt.Errorf("%s: %w", path, err)
	}
	return im, data, nil
}

// SHA256 returns the lower-case hex SHA-256 of b: the name of the bytes
// written, in the catalog, the store, recipes and records.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
