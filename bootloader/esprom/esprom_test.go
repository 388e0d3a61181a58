package esprom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// lineLog records DTR and RTS writes.
type lineLog struct{ ops []string }

func (l *lineLog) SetDTR(on bool) error {
	l.ops = append(l.ops, fmt.Sprintf("DTR=%d", b2i(on)))
	return nil
}
func (l *lineLog) SetRTS(on bool) error {
	l.ops = append(l.ops, fmt.Sprintf("RTS=%d", b2i(on)))
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAppendSLIP(t *testing.T) {
	tests := []struct {
		in, want []byte
	}{
		{[]byte{1, 2, 3}, []byte{0xC0, 1, 2, 3, 0xC0}},
		{[]byte{0xC0}, []byte{0xC0, 0xDB, 0xDC, 0xC0}},
		{[]byte{0xDB}, []byte{0xC0, 0xDB, 0xDD, 0xC0}},
		{[]byte{0xDB, 0xDC, 0xC0, 0xDD}, []byte{0xC0, 0xDB, 0xDD, 0xDC, 0xDB, 0xDC, 0xDD, 0xC0}},
	}
	for _, tt := range tests {
		got := AppendSLIP(nil, tt.in)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("AppendSLIP(% X) = % X, want % X", tt.in, got, tt.want)
		}
		if n := SLIPLen(tt.in); n != len(tt.want) {
			t.Errorf("SLIPLen(% X) = %d, want %d", tt.in, n, len(tt.want))
		}
	}
}

func decodeAll(t *testing.T, stream []byte) (pkts [][]byte, errs []error) {
	t.Helper()
	var d SLIPDecoder
	for _, b := range stream {
		p, err := d.Feed(b)
		if err != nil {
			errs = append(errs, err)
		}
		if p != nil {
			pkts = append(pkts, append([]byte(nil), p...))
		}
	}
	return pkts, errs
}

func TestSLIPDecoder(t *testing.T) {
	boot := []byte("ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3\r\nwaiting for download\r\n")
	a, b := []byte{1, 0xC0, 2}, []byte{0xDB, 3}
	tests := []struct {
		name   string
		stream []byte
		want   [][]byte
		errs   int
	}{
		{"garbage between packets", append(append(append(boot, AppendSLIP(nil, a)...), "noise"...), AppendSLIP(nil, b)...), [][]byte{a, b}, 0},
		{"back to back", append(AppendSLIP(nil, a), AppendSLIP(nil, b)...), [][]byte{a, b}, 0},
		{"shared delimiter", []byte{0xC0, 1, 0xC0, 2, 0xC0}, [][]byte{{1}}, 0},
		{"bad escape dropped", append([]byte{0xC0, 1, 0xDB, 0x00, 2, 0xC0}, AppendSLIP(nil, a)...), [][]byte{a}, 1},
		{"escape at the end", []byte{0xC0, 1, 0xDB, 0xC0}, nil, 1},
		{"empty packets", []byte{0xC0, 0xC0, 0xC0, 0xC0}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := decodeAll(t, tt.stream)
			if len(got) != len(tt.want) {
				t.Fatalf("decoded %d packets (% X), want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("packet %d = % X, want % X", i, got[i], tt.want[i])
				}
			}
			if len(errs) != tt.errs {
				t.Errorf("errors = %v, want %d", errs, tt.errs)
			}
		})
	}
	var d SLIPDecoder
	d.Feed(0xC0)
	for range MaxPacket + 1 {
		d.Feed(0x11)
	}
	if _, err := d.Feed(0xC0); !errors.Is(err, ErrTooLong) {
		t.Errorf("packet of %d bytes: Feed = %v, want ErrTooLong", MaxPacket+1, err)
	}
}

func TestDecodeResponse(t *testing.T) {
	md5hex := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name      string
		pkt       []byte
		statusLen int
		dataLen   int
		want      Response
		err       bool
	}{
		{"ESP32 READ_REG", AppendResponse(nil, OpReadReg, 0x00F01D83, nil, 0, 0, 4), 4, 0, Response{Op: OpReadReg, Value: 0x00F01D83, Data: []byte{}}, false},
		{"ESP8266 READ_REG", AppendResponse(nil, OpReadReg, 0xFFF0C101, nil, 0, 0, 2), 2, 0, Response{Op: OpReadReg, Value: 0xFFF0C101, Data: []byte{}}, false},
		{"guess 4", AppendResponse(nil, OpSync, 7, nil, 0, 0, 4), 0, 0, Response{Op: OpSync, Value: 7, Data: []byte{}}, false},
		{"failure", AppendResponse(nil, OpFlashData, 0, nil, 1, CodeBadCRC, 4), 4, 0, Response{Op: OpFlashData, Status: 1, Code: CodeBadCRC, Data: []byte{}}, false},
		{"MD5", AppendResponse(nil, OpSPIFlashMD5, 0, md5hex, 0, 0, 4), 4, 32, Response{Op: OpSPIFlashMD5, Data: md5hex}, false},
		{"MD5 failed carries no data", AppendResponse(nil, OpSPIFlashMD5, 0, nil, 1, CodeFlashRead, 2), 2, 32, Response{Op: OpSPIFlashMD5, Status: 1, Code: CodeFlashRead, Data: []byte{}}, false},
		{"short", []byte{1, 2, 3}, 4, 0, Response{}, true},
		{"request", AppendRequest(nil, OpSync, 0, []byte{0, 0, 0, 0}), 4, 0, Response{}, true},
		{"length mismatch", append(AppendResponse(nil, OpReadReg, 0, nil, 0, 0, 2), 9), 2, 0, Response{}, true},
		{"no room for status", AppendResponse(nil, OpReadReg, 0, nil, 0, 0, 2), 4, 0, Response{}, true},
		{"MD5 too short", AppendResponse(nil, OpSPIFlashMD5, 0, md5hex[:16], 0, 0, 4), 4, 32, Response{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResponse(tt.pkt, tt.statusLen, tt.dataLen)
			if (err != nil) != tt.err {
				t.Fatalf("DecodeResponse(% X) error = %v, want error %v", tt.pkt, err, tt.err)
			}
			if tt.err {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Errorf("error %T, want *ProtocolError", err)
				}
				return
			}
			if got.Op != tt.want.Op || got.Value != tt.want.Value || got.Status != tt.want.Status || got.Code != tt.want.Code || !bytes.Equal(got.Data, tt.want.Data) {
				t.Errorf("DecodeResponse() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	data := []byte{1, 2, 3, 0xC0}
	pkt := AppendRequest(nil, OpFlashData, Checksum(data), data)
	r, err := DecodeRequest(pkt)
	if err != nil || r.Op != OpFlashData || r.Checksum != Checksum(data) || !bytes.Equal(r.Data, data) {
		t.Fatalf("DecodeRequest(AppendRequest()) = %+v, %v", r, err)
	}
	if got := Checksum(data); got != 0xEF^1^2^3^0xC0 {
		t.Errorf("Checksum(% X) = %#x, want %#x", data, got, 0xEF^1^2^3^0xC0)
	}
	if _, err := DecodeRequest(pkt[:len(pkt)-1]); err == nil {
		t.Errorf("DecodeRequest of a truncated packet = nil error")
	}
}

func TestMAC(t *testing.T) {
	for _, chip := range Chips {
		mac := [6]byte{0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56}
		if chip.Magic == ESP8266.Magic {
			mac[0], mac[1], mac[2] = 0x5C, 0xCF, 0x7F
		}
		got, err := DecodeMAC(chip, EncodeMAC(chip, mac, 0x99))
		if err != nil || got != mac {
			t.Errorf("%s: DecodeMAC(EncodeMAC(%s)) = %s, %v", chip.Name, FormatMAC(mac), FormatMAC(got), err)
		}
	}
	// ESP8266 units with MAC3 zero take the OUI from a code in MAC1.
	tests := []struct {
		mac1 uint32
		want string
		err  bool
	}{
		{0x00_AB_CD, "18:FE:34:AB:CD:EF", false},
		{0x01_AB_CD, "AC:D0:74:AB:CD:EF", false},
		{0x02_AB_CD, "", true},
	}
	for _, tt := range tests {
		got, err := DecodeMAC(ESP8266, []uint32{0xEF000000, tt.mac1, 0})
		if (err != nil) != tt.err || (!tt.err && FormatMAC(got) != tt.want) {
			t.Errorf("DecodeMAC(ESP8266, MAC1 %#x) = %s, %v; want %s", tt.mac1, FormatMAC(got), err, tt.want)
		}
	}
	if got := ESP32.MACRegs; got[0] != 0x3FF5A004 || got[1] != 0x3FF5A008 {
		t.Errorf("ESP32 MAC words at % X, want eFuse BLK0 words 1 and 2", got)
	}
}

func TestESP8266EraseSize(t *testing.T) {
	// Whatever the region, the size the client asks for makes the buggy
	// ROM erase the region's sectors, at most one more.
	for first := uint32(0); first < 40; first++ {
		for n := uint32(1); n < 80; n++ {
			ask := ESP8266EraseSize(first*SectorSize, n*SectorSize)
			got := ESP8266Erased(first*SectorSize, ask)
			if got != n && got != n+1 {
				t.Fatalf("sectors %d..%d: asking for %#x erases %d sectors, want %d or %d", first, first+n-1, ask, got, n, n+1)
			}
			if got == n+1 && n%2 == 0 {
				t.Fatalf("sectors %d..%d: an even count erases one more", first, first+n-1)
			}
		}
	}
}

func TestROMErrors(t *testing.T) {
	codes := map[byte]string{
		CodeInvalidMessage: "invalid message",
		CodeFailedToAct:    "failed to act",
		CodeBadCRC:         "checksum",
		CodeFlashWrite:     "flash write error",
		CodeFlashRead:      "flash read error",
		CodeReadLength:     "read length",
		CodeDeflate:        "deflate",
		0x42:               "unknown error code 0x42",
	}
	for code, want := range codes {
		err := &ROMError{Op: OpFlashData, Status: 1, Code: code, Addr: 0x10000}
		msg := err.Error()
		if !strings.Contains(msg, want) || !strings.Contains(msg, "FLASH_DATA at 0x010000") || !strings.Contains(msg, ";") {
			t.Errorf("ROMError{Code: %#x}.Error() = %q, want it to name the command, the address, %q and a hint", code, msg, want)
		}
	}
	if !errors.Is(&ROMError{Op: OpSPIFlashMD5, Code: CodeInvalidMessage}, ErrUnsupported) {
		t.Errorf("error 05 on SPI_FLASH_MD5 does not match ErrUnsupported")
	}
	if errors.Is(&ROMError{Op: OpFlashData, Code: CodeInvalidMessage}, ErrUnsupported) {
		t.Errorf("error 05 on FLASH_DATA matches ErrUnsupported; every ROM has FLASH_DATA")
	}
}

func TestParseEntry(t *testing.T) {
	for _, name := range []string{"classic", "unix-tight"} {
		if _, err := ParseEntry(name); err != nil {
			t.Errorf("ParseEntry(%q) = %v", name, err)
		}
	}
	var l lineLog
	if err := ModemReset(context.Background(), &l, "unix-tight"); err != nil {
		t.Fatal(err)
	}
	// Both lines end off; EN was held low (RTS on, DTR off) and then
	// released with GPIO0 low (DTR on, RTS off).
	want := []string{"DTR=0", "RTS=0", "DTR=1", "RTS=1", "DTR=0", "RTS=1", "DTR=1", "RTS=0", "DTR=0", "RTS=0", "DTR=0"}
	if strings.Join(l.ops, " ") != strings.Join(want, " ") {
		t.Errorf("unix-tight on lines without an atomic setter = %v, want %v", l.ops, want)
	}
	if _, err := ParseEntry("gpio"); err == nil {
		t.Errorf("ParseEntry(\"gpio\") = nil error; the bench's lines are not a modem sequence")
	}
}
