package stm32

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var f1Cmds = []byte{0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x43, 0x63, 0x73, 0x82, 0x92}

// TestWireExamples checks the frames the package doc shows.
func TestWireExamples(t *testing.T) {
	ext, err := AppendExtendedErase(nil, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want []byte
	}{
		{"GET answer", EncodeGet(0x22, f1Cmds), []byte{0x0B, 0x22, 0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x43, 0x63, 0x73, 0x82, 0x92, 0x79}},
		{"GET_ID answer", EncodeID(0x410), []byte{0x01, 0x04, 0x10, 0x79}},
		{"READ command", AppendCommand(nil, CmdRead), []byte{0x11, 0xEE}},
		{"READ address", AppendAddress(nil, 0x1FFFF7E8), []byte{0x1F, 0xFF, 0xF7, 0xE8, 0xFF}},
		{"READ length", AppendCommand(nil, 11), []byte{0x0B, 0xF4}},
		{"WRITE address", AppendAddress(nil, 0x08000100), []byte{0x08, 0x00, 0x01, 0x00, 0x09}},
		{"WRITE data", AppendWriteData(nil, []byte{0xDE, 0xAD, 0xBE, 0xEF}), []byte{0x03, 0xDE, 0xAD, 0xBE, 0xEF, 0x21}},
		{"EXTENDED ERASE sectors 0 and 1", ext, []byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00}},
		{"mass erase", AppendSpecialErase(nil, MassErase), []byte{0xFF, 0xFF, 0x00}},
		{"GET_VERSION answer", EncodeVersion(0x31, 0, 0), []byte{0x31, 0x00, 0x00, 0x79}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s = % X, want % X", tt.name, tt.got, tt.want)
		}
	}
	if e, err := AppendErase(nil, []int{4, 5}); err != nil || !bytes.Equal(e, []byte{0x01, 0x04, 0x05, 0x01 ^ 0x04 ^ 0x05}) {
		t.Errorf("AppendErase([4 5]) = % X, %v", e, err)
	}
	for _, pages := range [][]int{nil, {256}, make([]int, 256)} {
		if _, err := AppendErase(nil, pages); err == nil {
			t.Errorf("AppendErase(%d pages, %v) succeeded", len(pages), pages[:min(1, len(pages))])
		}
	}
}

func TestDecodeGet(t *testing.T) {
	tests := []struct {
		in      []byte
		version byte
		cmds    []byte
		err     string
	}{
		{EncodeGet(0x22, f1Cmds), 0x22, f1Cmds, ""},
		{[]byte{0x00, 0x31, 0x79}, 0x31, []byte{}, ""},
		{[]byte{0x0B, 0x22, 0x00, 0x79}, 0, nil, "want 14"},
		{[]byte{0x01, 0x22, 0x00, 0x1F}, 0, nil, "NACK"},
		{[]byte{0x01, 0x22, 0x00, 0x00}, 0, nil, "0x00 where ACK was due"},
		{[]byte{0x01}, 0, nil, "want at least 3"},
	}
	for _, tt := range tests {
		v, cmds, err := DecodeGet(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("DecodeGet(% X) = %v, want an error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || v != tt.version || !bytes.Equal(cmds, tt.cmds) {
			t.Errorf("DecodeGet(% X) = %#x, % X, %v; want %#x, % X", tt.in, v, cmds, err, tt.version, tt.cmds)
		}
	}
}

func TestDecodeID(t *testing.T) {
	tests := []struct {
		in  []byte
		pid uint16
		ok  bool
	}{
		{[]byte{0x01, 0x04, 0x13, 0x79}, 0x413, true},
		{[]byte{0x02, 0x04, 0x10, 0xAA, 0x79}, 0x410, true}, // extra PID bytes, as stm32flash accepts
		{[]byte{0x00, 0x04, 0x79}, 0, false},
		{[]byte{0x01, 0x04, 0x13}, 0, false},
		{[]byte{0x01, 0x04, 0x13, 0x1F}, 0, false},
		{nil, 0, false},
	}
	for _, tt := range tests {
		pid, err := DecodeID(tt.in)
		if (err == nil) != tt.ok || pid != tt.pid {
			t.Errorf("DecodeID(% X) = %#x, %v; want %#x, ok %v", tt.in, pid, err, tt.pid, tt.ok)
		}
	}
}

func TestDecodeAck(t *testing.T) {
	tests := []struct {
		in   []byte
		n    int
		kind string
	}{
		{[]byte{ACK}, 1, "ack"},
		{[]byte{BUSY, BUSY, ACK, 0x00}, 3, "ack"},
		{[]byte{BUSY, NACK}, 2, "nack"},
		{[]byte{0x41, ACK}, 1, "protocol"},
		{[]byte{BUSY}, 1, "incomplete"},
		{nil, 0, "incomplete"},
	}
	for _, tt := range tests {
		n, err := DecodeAck(CmdWrite, StageData, 0x08000100, tt.in)
		var ne *NACKError
		var pe *ProtocolError
		kind := "ack"
		switch {
		case errors.As(err, &ne):
			kind = "nack"
		case errors.As(err, &pe):
			kind = "protocol"
			if !strings.Contains(err.Error(), "WRITE at 0x08000100: got 0x41") {
				t.Errorf("DecodeAck(% X) error %q does not name the command and the byte", tt.in, err)
			}
		case errors.Is(err, ErrIncomplete):
			kind = "incomplete"
		case err != nil:
			kind = err.Error()
		}
		if n != tt.n || kind != tt.kind {
			t.Errorf("DecodeAck(% X) = %d, %s; want %d, %s", tt.in, n, kind, tt.n, tt.kind)
		}
	}
}

func TestSyncVerdict(t *testing.T) {
	tests := []struct {
		in []byte
		ok bool
	}{
		{[]byte{ACK}, true},
		{[]byte{NACK}, true},
		{[]byte{0x00, 0xF8, ACK}, true}, // noise while the unit reset, then the ACK
		{[]byte("ready\r\n> "), false},  // an application's prompt: 'y' is 0x79
		{nil, false},
	}
	for _, tt := range tests {
		if _, ok := syncVerdict(tt.in); ok != tt.ok {
			t.Errorf("syncVerdict(%q) = %v, want %v", tt.in, ok, tt.ok)
		}
	}
}

func TestErrors(t *testing.T) {
	rdp := &NACKError{Cmd: CmdRead, Stage: StageCommand, Addr: 0x1FFFF7E8}
	if !errors.Is(rdp, ErrReadProtected) || !strings.Contains(rdp.Error(), "READ at 0x1FFFF7E8") || !strings.Contains(rdp.Error(), "read-protected") {
		t.Errorf("READ NACKed at the command: %q, Is(ErrReadProtected) %v", rdp, errors.Is(rdp, ErrReadProtected))
	}
	for _, e := range []*NACKError{
		{Cmd: CmdRead, Stage: StageAddress},
		{Cmd: CmdGet, Stage: StageCommand},
		{Cmd: CmdWrite, Stage: StageData},
	} {
		if errors.Is(e, ErrReadProtected) {
			t.Errorf("%v matches ErrReadProtected", e)
		}
	}
	if s := (&NACKError{Cmd: CmdExtendedErase, Stage: StagePages}).Error(); strings.Contains(s, " at 0x") || !strings.Contains(s, "EXTENDED_ERASE") {
		t.Errorf("erase NACK = %q, want the command named without an address", s)
	}
	if s := (&VerifyError{Addr: 0x08000010, Want: 0xFF, Got: 0x0F}).Error(); !strings.Contains(s, "not erased") || !strings.Contains(s, "0x08000010") {
		t.Errorf("VerifyError with cleared bits = %q, want the address and the missing erase", s)
	}
	if s := (&VerifyError{Addr: 0x08000010, Want: 0x0F, Got: 0x1F}).Error(); strings.Contains(s, "not erased") {
		t.Errorf("VerifyError with a set bit = %q blames the erase", s)
	}
	if got := FormatUID([12]byte{0x31, 0x00, 0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c}); got != "3100AB00000000000000000C" {
		t.Errorf("FormatUID = %s", got)
	}
	if got := FormatVersion(0x31); got != "3.1" {
		t.Errorf("FormatVersion(0x31) = %s", got)
	}
}

func TestParts(t *testing.T) {
	// Flash ends as stm32flash 0.7's device table has them, so that
	// `stm32flash -r` and ReadMemory of the whole flash read the same bytes.
	tests := []struct {
		pid             uint16
		flashEnd        uint32
		units           int
		uid             uint32
		ramEnd, bootRAM uint32
	}{
		{0x412, 0x08008000, 32, 0x1FFFF7E8, 0x20002800, 0x20000200},
		{0x410, 0x08020000, 128, 0x1FFFF7E8, 0x20005000, 0x20000200},
		{0x414, 0x08080000, 256, 0x1FFFF7E8, 0x20010000, 0x20000200},
		{0x411, 0x08100000, 12, 0x1FFF7A10, 0x20020000, 0x20002000},
		{0x413, 0x08100000, 12, 0x1FFF7A10, 0x20020000, 0x20003000},
		{0x423, 0x08040000, 6, 0x1FFF7A10, 0x20010000, 0x20003000},
		{0x433, 0x08080000, 8, 0x1FFF7A10, 0x20018000, 0x20003000},
		{0x431, 0x08080000, 8, 0x1FFF7A10, 0x20020000, 0x20003000},
		{0x440, 0x08010000, 64, 0x1FFFF7AC, 0x20002000, 0x20000800},
		{0x432, 0x08040000, 128, 0x1FFFF7AC, 0x20008000, 0x20001400},
		{0x449, 0x08100000, 8, 0x1FF0F420, 0x20050000, 0x20004000},
		{0x460, 0x08020000, 64, 0x1FFF7590, 0x20009000, 0x20002700},
		{0x469, 0x08080000, 256, 0x1FFF7590, 0x20018000, 0x20004000},
		{0x450, 0x08200000, 16, 0x1FF1E800, 0x20020000, 0x20004100},
		{0x417, 0x08010000, 512, 0x1FF80050, 0x20002000, 0x20001000},
		{0x416, 0x08020000, 512, 0x1FF80050, 0x20004000, 0x20000800},
		{0x415, 0x08100000, 512, 0x1FFF7590, 0x20018000, 0x20003100},
		{0x495, 0x08100000, 256, 0x1FFF7590, 0x2000C000, 0x20004000},
	}
	for _, tt := range tests {
		p, ok := LookupPID(tt.pid)
		if !ok {
			t.Errorf("LookupPID(%#x) found nothing", tt.pid)
			continue
		}
		if got := p.Flash().End(); got != uint64(tt.flashEnd) || p.Units() != tt.units || p.UIDAddr != tt.uid ||
			p.RAM.End() != uint64(tt.ramEnd) || p.RAM.Start+p.BootloaderRAM != tt.bootRAM {
			t.Errorf("part %v: flash end %#x, %d units, UID %#x, RAM end %#x, free RAM from %#x; want %#x, %d, %#x, %#x, %#x",
				p, got, p.Units(), p.UIDAddr, p.RAM.End(), p.RAM.Start+p.BootloaderRAM, tt.flashEnd, tt.units, tt.uid, tt.ramEnd, tt.bootRAM)
		}
	}
	families := map[string]bool{}
	seen := map[uint16]bool{}
	for _, p := range Parts() {
		families[p.Family] = true
		if seen[p.PID] {
			t.Errorf("PID %#x appears twice in the part table", p.PID)
		}
		seen[p.PID] = true
		if p.BootloaderRAM > p.RAM.Size || p.FlashSize() == 0 || p.SystemMemory.Size == 0 || p.EraseMaxPerKiB == 0 {
			t.Errorf("part %v: RAM %v with %#x reserved, system memory %v, erase bound %v", p, p.RAM, p.BootloaderRAM, p.SystemMemory, p.EraseMaxPerKiB)
		}
		if p.NoMassErase != (p.Family == "L0" || p.Family == "L1") {
			t.Errorf("part %v: NoMassErase = %v; stm32flash marks the L0 and L1 only", p, p.NoMassErase)
		}
	}
	for _, f := range []string{"F0", "F1", "F2", "F3", "F4", "F7", "G0", "G4", "H7", "L0", "L1", "L4", "WB"} {
		if !families[f] {
			t.Errorf("the part table has no %s part", f)
		}
	}
	if _, ok := LookupPID(0x999); ok {
		t.Error("LookupPID(0x999) found a part")
	}
	f4, _ := LookupPID(0x413)
	layout := []uint32{16 << 10, 16 << 10, 16 << 10, 16 << 10, 64 << 10, 128 << 10, 128 << 10, 128 << 10, 128 << 10, 128 << 10, 128 << 10, 128 << 10}
	for i, s := range layout {
		if u, _ := f4.Unit(i); u.Size != s {
			t.Errorf("F4 sector %d = %v, want %d bytes", i, u, s)
		}
	}
	units := []struct {
		start, size uint32
		want        []int
	}{
		{0x08000000, 1, []int{0}},
		{0x08003FFF, 2, []int{0, 1}},
		{0x08010000, 0x10000, []int{4}},
		{0x08010000, 0x10001, []int{4, 5}},
		{0x080E0000, 0x20000, []int{11}},
		{0x08000000, 0, nil},
	}
	for _, tt := range units {
		got, err := f4.UnitsIn(tt.start, tt.size)
		if err != nil || len(got) != len(tt.want) || (len(got) > 0 && (got[0] != tt.want[0] || got[len(got)-1] != tt.want[len(tt.want)-1])) {
			t.Errorf("UnitsIn(%#x, %#x) = %v, %v; want %v", tt.start, tt.size, got, err, tt.want)
		}
	}
	for _, r := range [][2]uint32{{0x07FFFFFF, 2}, {0x080FFFFF, 2}, {0x20000000, 4}} {
		if _, err := f4.UnitsIn(r[0], r[1]); err == nil {
			t.Errorf("UnitsIn(%#x, %d) outside flash succeeded", r[0], r[1])
		}
	}
	if b := f4.EraseBudget(5); b < time.Second*4 {
		t.Errorf("EraseBudget(128 KiB sector) = %v, want at least the datasheet's 4 s", b)
	}
}

func FuzzDecodeGet(f *testing.F) {
	f.Add(EncodeGet(0x22, f1Cmds))
	f.Add([]byte{0x00, 0x31, 0x79})
	f.Add([]byte{0xFF, 0x31})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, cmds, err := DecodeGet(b)
		if err != nil {
			var ne *NACKError
			var pe *ProtocolError
			if !errors.As(err, &ne) && !errors.As(err, &pe) {
				t.Fatalf("DecodeGet(% X) = %v, want a NACKError or ProtocolError", b, err)
			}
			return
		}
		if re := EncodeGet(v, cmds); !bytes.Equal(re, b) {
			t.Fatalf("EncodeGet(DecodeGet(% X)) = % X", b, re)
		}
	})
}

func FuzzDecodeID(f *testing.F) {
	f.Add(EncodeID(0x410))
	f.Add([]byte{0x02, 0x04, 0x10, 0xAA, 0x79})
	f.Add([]byte{0x00, 0x79})
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, err := DecodeID(b)
		if err != nil {
			return
		}
		if len(b) < 4 || b[len(b)-1] != ACK || pid != uint16(b[1])<<8|uint16(b[2]) {
			t.Fatalf("DecodeID(% X) = %#x, want failure or the first two PID bytes", b, pid)
		}
		if b[0] == 1 {
			if re := EncodeID(pid); !bytes.Equal(re, b) {
				t.Fatalf("EncodeID(DecodeID(% X)) = % X", b, re)
			}
		}
	})
}

func FuzzDecodeVersion(f *testing.F) {
	f.Add(EncodeVersion(0x22, 0, 0))
	f.Add([]byte{0x22, 0, 0, 0x1F})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, o1, o2, err := DecodeVersion(b)
		if err == nil && !bytes.Equal(EncodeVersion(v, o1, o2), b) {
			t.Fatalf("DecodeVersion(% X) does not round-trip", b)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte{ACK})
	f.Add([]byte{BUSY, BUSY, ACK})
	f.Add([]byte{BUSY, NACK, ACK})
	f.Add([]byte{0x41})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeAck(CmdRead, StageAddress, 0x08000000, b)
		if n < 0 || n > len(b) {
			t.Fatalf("DecodeAck(% X) consumed %d bytes", b, n)
		}
		for _, c := range b[:max(n-1, 0)] {
			if c != BUSY {
				t.Fatalf("DecodeAck(% X) skipped 0x%02X", b, c)
			}
		}
		var ne *NACKError
		var pe *ProtocolError
		switch {
		case err == nil:
			if b[n-1] != ACK {
				t.Fatalf("DecodeAck(% X) = nil without an ACK", b)
			}
		case errors.As(err, &ne):
			if b[n-1] != NACK || ne.Stage != StageAddress {
				t.Fatalf("DecodeAck(% X) = %v", b, err)
			}
		case errors.As(err, &pe):
			if c := b[n-1]; c == ACK || c == NACK || c == BUSY {
				t.Fatalf("DecodeAck(% X) = %v for an answer byte", b, err)
			}
		case errors.Is(err, ErrIncomplete):
			if n != len(b) {
				t.Fatalf("DecodeAck(% X) incomplete after %d bytes", b, n)
			}
		default:
			t.Fatalf("DecodeAck(% X) = %v", b, err)
		}
	})
}

func FuzzDecodeAddress(f *testing.F) {
	f.Add(uint32(0x08000000), byte(0))
	f.Add(uint32(0x1FFFF7E8), byte(1))
	f.Fuzz(func(t *testing.T, addr uint32, flip byte) {
		var a [5]byte
		copy(a[:], AppendAddress(nil, addr))
		got, ok := DecodeAddress(a)
		if !ok || got != addr {
			t.Fatalf("DecodeAddress(AppendAddress(%#x)) = %#x, %v", addr, got, ok)
		}
		if flip != 0 {
			a[4] ^= flip
			if _, ok := DecodeAddress(a); ok {
				t.Fatalf("DecodeAddress accepted a checksum off by %#x", flip)
			}
		}
	})
}

func FuzzSyncVerdict(f *testing.F) {
	f.Add([]byte("ready\r\n> "))
	f.Add([]byte{0x00, ACK})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := syncVerdict(b)
		if ok != (len(b) > 0 && (b[len(b)-1] == ACK || b[len(b)-1] == NACK)) || (ok && a != b[len(b)-1]) {
			t.Fatalf("syncVerdict(% X) = %#x, %v", b, a, ok)
		}
	})
}
