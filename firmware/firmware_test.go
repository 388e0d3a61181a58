package firmware

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"aead.dev/minisign"
)

func TestParseHex(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		segs  []Segment
		entry uint32
	}{
		{"data and EOF", ":0400000001020304F2\n:00000001FF\n",
			[]Segment{{0, []byte{1, 2, 3, 4}}}, 0},
		{"CRLF, blank lines, adjacent records merged", ":020000000102FB\r\n\r\n:020002000304F5\r\n:00000001FF\r\n",
			[]Segment{{0, []byte{1, 2, 3, 4}}}, 0},
		{"extended linear address", ":020000040800F2\n:020010001122BB\n:00000001FF\n",
			[]Segment{{0x08000010, []byte{0x11, 0x22}}}, 0},
		{"extended segment address", ":020000021000EC\n:0100040055A6\n:00000001FF\n",
			[]Segment{{0x10004, []byte{0x55}}}, 0},
		{"start linear address", ":0400000508000131BD\n:0100000001FE\n:00000001FF\n",
			[]Segment{{0, []byte{1}}}, 0x08000131},
		{"start segment address", ":0400000312340010A3\n:0100000001FE\n:00000001FF\n",
			[]Segment{{0, []byte{1}}}, 0x12350},
		{"gap", ":0100000001FE\n:0100100002ED\n:00000001FF\n",
			[]Segment{{0, []byte{1}}, {0x10, []byte{2}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := ParseHex([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseHex = %v, want no error", err)
			}
			if !segsEqual(im.Segments, tt.segs) || im.Entry != tt.entry {
				t.Errorf("ParseHex = %v entry %#x, want %v entry %#x", im.Segments, im.Entry, tt.segs, tt.entry)
			}
		})
	}
}

func segsEqual(a, b []Segment) bool {
	return slices.EqualFunc(a, b, func(x, y Segment) bool { return x.Addr == y.Addr && bytes.Equal(x.Data, y.Data) })
}

func TestParseHexErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		want string
	}{
		{"checksum", ":0100000001FE\n\n:0400000001020304F3\n:00000001FF\n", 3, "checksum mismatch: the record says 0xF3, its bytes give 0xF2"},
		{"no colon", "0100000001FE\n", 1, "does not start with ':'"},
		{"bad digit", ":01000000G1FE\n", 1, "invalid byte"},
		{"odd length", ":0100000001F\n", 1, "even number"},
		{"count", ":0200000001FD\n", 1, "byte count 2, but the record holds 1"},
		{"type", ":00000006FA\n", 1, "unknown record type 06"},
		{"no EOF", ":0100000001FE\n", 1, "no end-of-file record"},
		{"after EOF", ":00000001FF\n:0100000001FE\n", 2, "after the end-of-file"},
		{"ext linear size", ":0100000401FA\n", 1, "wants 2 data bytes"},
		{"start size", ":020000050000F9\n", 1, "wants 4 data bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHex([]byte(tt.in))
			var he *HexError
			if !errors.As(err, &he) || he.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseHex(%q) = %v, want a HexError on line %d containing %q", tt.in, err, tt.line, tt.want)
			}
		})
	}
	if _, err := ParseHex([]byte(":0100000001FE\n:0100000002FD\n:00000001FF\n")); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("ParseHex(overlapping records) = %v, want an overlap error", err)
	}
}

func TestHexRoundTrip(t *testing.T) {
	segs := []Segment{{0x0800FFF0, bytes.Repeat([]byte{0xA5}, 40)}, {0x08020000, []byte("hello")}}
	im, err := ParseHex(FormatHex(segs, 0x08000131))
	if err != nil {
		t.Fatal(err)
	}
	if !segsEqual(im.Segments, segs) || im.Entry != 0x08000131 {
		t.Errorf("ParseHex(FormatHex(%v)) = %v entry %#x", segs, im.Segments, im.Entry)
	}
}

func TestFlatten(t *testing.T) {
	im := &Image{Segments: []Segment{{0x100, []byte{1, 2}}, {0x104, []byte{3}}}}
	addr, data, err := im.Flatten(0xFF)
	if err != nil || addr != 0x100 || !bytes.Equal(data, []byte{1, 2, 0xFF, 0xFF, 3}) {
		t.Errorf("Flatten(0xFF) = %#x, % x, %v; want 0x100, 01 02 ff ff 03", addr, data, err)
	}
	if _, _, err := (&Image{}).Flatten(0); !errors.Is(err, ErrEmpty) {
		t.Errorf("Flatten(empty) = %v, want ErrEmpty", err)
	}
	far := &Image{Segments: []Segment{{0, []byte{1}}, {0x20000000, []byte{2}}}}
	if _, _, err := far.Flatten(0); err == nil {
		t.Error("Flatten(segments 512 MiB apart) succeeded, want an error")
	}
}

// elfProg is a program header for buildELF.
type elfProg struct {
	typ          uint32
	vaddr, paddr uint32
	data         []byte
	memsz        uint32
}

// buildELF returns a little-endian 32-bit ARM executable with the given
// program headers, their data following the headers.
func buildELF(entry uint32, progs []elfProg) []byte {
	const ehsize, phsize = 52, 32
	var b bytes.Buffer
	h := make([]byte, ehsize)
	copy(h, "\x7fELF\x01\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(h[16:], 2)  // ET_EXEC
	le.PutUint16(h[18:], 40) // EM_ARM
	le.PutUint32(h[20:], 1)
	le.PutUint32(h[24:], entry)
	le.PutUint32(h[28:], ehsize)
	le.PutUint16(h[40:], ehsize)
	le.PutUint16(h[42:], phsize)
	le.PutUint16(h[44:], uint16(len(progs)))
	le.PutUint16(h[46:], 40)
	b.Write(h)
	off := uint32(ehsize + phsize*len(progs))
	for _, p := range progs {
		ph := make([]byte, phsize)
		le.PutUint32(ph[0:], p.typ)
		le.PutUint32(ph[4:], off)
		le.PutUint32(ph[8:], p.vaddr)
		le.PutUint32(ph[12:], p.paddr)
		le.PutUint32(ph[16:], uint32(len(p.data)))
		le.PutUint32(ph[20:], max(p.memsz, uint32(len(p.data))))
		le.PutUint32(ph[24:], 5)
		le.PutUint32(ph[28:], 4)
		b.Write(ph)
		off += uint32(len(p.data))
	}
	for _, p := range progs {
		b.Write(p.data)
	}
	return b.Bytes()
}

func TestParseELF(t *testing.T) {
	text := bytes.Repeat([]byte{0x11}, 16)
	data := []byte{0x22, 0x22, 0x22, 0x22}
	f := buildELF(0x08000101, []elfProg{
		{typ: 1, vaddr: 0x08000000, paddr: 0x08000000, data: text},
		// .data runs from RAM but is loaded into flash after .text.
		{typ: 1, vaddr: 0x20000000, paddr: 0x08000010, data: data, memsz: 64},
		{typ: 4, vaddr: 0, paddr: 0x09000000, data: []byte{9}},     // PT_NOTE: not loaded
		{typ: 1, vaddr: 0x20000100, paddr: 0x20000100, memsz: 256}, // .bss: nothing in the file
	})
	im, err := ParseELF(f)
	if err != nil {
		t.Fatalf("ParseELF = %v", err)
	}
	want := []Segment{{0x08000000, append(append([]byte(nil), text...), data...)}}
	if !segsEqual(im.Segments, want) || im.Entry != 0x08000101 || im.Format != ELF {
		t.Errorf("ParseELF = %v entry %#x, want %v entry 0x08000101", im.Segments, im.Entry, want)
	}
	if FormatOf("fw.bin", f) != ELF {
		t.Errorf("FormatOf(fw.bin with the ELF magic) = %v, want elf", FormatOf("fw.bin", f))
	}
	if _, err := ParseELF(buildELF(0, []elfProg{{typ: 4, data: []byte{1}}})); !errors.Is(err, ErrEmpty) {
		t.Errorf("ParseELF(no PT_LOAD) = %v, want ErrEmpty", err)
	}
	if _, err := ParseELF([]byte("not an elf")); err == nil {
		t.Error("ParseELF(garbage) succeeded, want an error")
	}
}

func FuzzParseHex(f *testing.F) {
	f.Add([]byte(":0400000001020304F2\n:00000001FF\n"))
	f.Add([]byte(":020000040800F2\n:020010001122BB\n:0400000508000131BD\n:00000001FF\n"))
	f.Add([]byte(":020000021000EC\n:0100040055A6\n:00000001FF\r\n"))
	f.Add(FormatHex([]Segment{{0xFFF0, bytes.Repeat([]byte{1}, 40)}}, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		im, err := ParseHex(in)
		if err != nil {
			return
		}
		// What parses must round-trip through FormatHex.
		again, err := ParseHex(FormatHex(im.Segments, im.Entry))
		if err != nil {
			t.Fatalf("ParseHex(FormatHex(%v)) = %v", im.Segments, err)
		}
		if !segsEqual(again.Segments, im.Segments) {
			t.Fatalf("round trip: %v, want %v", again.Segments, im.Segments)
		}
		for i := 1; i < len(im.Segments); i++ {
			if uint64(im.Segments[i].Addr) <= im.Segments[i-1].End() {
				t.Fatalf("segments %v are not sorted, apart and merged", im.Segments)
			}
		}
	})
}

func FuzzParseELF(f *testing.F) {
	f.Add(buildELF(0x08000101, []elfProg{{typ: 1, vaddr: 0x08000000, paddr: 0x08000000, data: []byte{1, 2, 3, 4}}}))
	f.Add(buildELF(0, []elfProg{{typ: 1, paddr: 0x10, data: []byte{1}}, {typ: 1, paddr: 0x0, data: []byte{1, 2}}}))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, in []byte) {
		im, err := ParseELF(in)
		if err != nil {
			return
		}
		if len(im.Segments) == 0 || im.Size() > len(in) {
			t.Fatalf("ParseELF = %d segments of %d bytes from a %d-byte file", len(im.Segments), im.Size(), len(in))
		}
		for i := 1; i < len(im.Segments); i++ {
			if uint64(im.Segments[i].Addr) <= im.Segments[i-1].End() {
				t.Fatalf("segments %v are not sorted, apart and merged", im.Segments)
			}
		}
	})
}

func testKey(t testing.TB) (pub string, sec []byte) {
	pk, sk, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pk.MarshalText()
	s, _ := sk.MarshalText()
	return string(p), s
}

func TestVerify(t *testing.T) {
	pub, sec := testKey(t)
	otherPub, otherSec := testKey(t)
	var k Keyring
	if err := k.Add("bench", "untrusted comment: minisign public key\n"+pub+"\n"); err != nil {
		t.Fatal(err)
	}
	data := []byte("firmware bytes")
	sig, err := Sign(sec, data, "test")
	if err != nil {
		t.Fatal(err)
	}
	otherSig, _ := Sign(otherSec, data, "test")
	tests := []struct {
		name string
		data []byte
		sig  []byte
		want error
	}{
		{"good", data, sig, nil},
		{"tampered", []byte("firmware bytez"), sig, ErrBadSignature},
		{"unsigned", data, nil, ErrUnsigned},
		{"other key", data, otherSig, ErrUntrustedKey},
		{"garbage", data, []byte("untrusted comment: x\nAAAA\n"), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := k.Verify(tt.data, tt.sig)
			if !errors.Is(err, tt.want) || (tt.want == nil && signer != "bench") {
				t.Errorf("Verify = %q, %v; want bench, %v", signer, err, tt.want)
			}
		})
	}
	var none Keyring
	if _, err := none.Verify(data, sig); !errors.Is(err, ErrNoKeys) {
		t.Errorf("Verify with no keys = %v, want ErrNoKeys", err)
	}
	_ = otherPub
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("image")
	sha, err := s.Put(data)
	if err != nil || sha != SHA256(data) {
		t.Fatalf("Put = %s, %v; want %s", sha, err, SHA256(data))
	}
	if again, err := s.Put(data); err != nil || again != sha {
		t.Errorf("Put again = %s, %v", again, err)
	}
	if got, err := s.Get(sha); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get = %q, %v", got, err)
	}
	if !s.Has(sha) || s.Has(SHA256([]byte("other"))) {
		t.Error("Has disagrees with what was put")
	}
	if _, err := s.Get(SHA256([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != sha {
		t.Errorf("store holds %v, want only %s (no temporary files)", ents, sha)
	}
	p := filepath.Join(dir, sha)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("imagf"), 0o644)
	if _, err := s.Get(sha); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get(corrupted file) = %v, want ErrCorrupt", err)
	}
}

// BenchmarkParseHex parses a 1 MiB image written as Intel HEX.
func BenchmarkParseHex(b *testing.B) {
	b.ReportAllocs()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 31)
	}
	text := FormatHex([]Segment{{0x08000000, data}}, 0)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ParseHex(text); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDetectByContent(t *testing.T) {
	hexText := FormatHex([]Segment{{Addr: 0x100, Data: []byte{1, 2, 3, 4}}}, 0)
	tests := []struct {
		name string
		data []byte
		want Format
	}{
		{"app.bin", hexText, Hex},
		{"app.img", append([]byte("\r\n\n"), bytes.ReplaceAll(hexText, []byte("\n"), []byte("\r\n"))...), Hex},
		{"app.hex", append([]byte("\xEF\xBB\xBF"), hexText...), Hex},
		{"app.bin", []byte("\x7fELF\x01\x01\x01"), ELF},
		{"app.bin", []byte(":not hex at all\n"), Raw},
		{"app.bin", []byte(":0401000001020304F2\n"), Raw}, // bad checksum: not a record
		{"app.bin", []byte{0x0C, 0x94, 0x34, 0x00}, Raw},
		{"app.hex", []byte{0x0C, 0x94, 0x34, 0x00}, Hex}, // named .hex: parsed as HEX, so the parser says what is wrong
	}
	for _, tt := range tests {
		if got := FormatOf(tt.name, tt.data); got != tt.want {
			t.Errorf("FormatOf(%q, % .12X) = %s, want %s", tt.name, tt.data, got, tt.want)
		}
	}
}
