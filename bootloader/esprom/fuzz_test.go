package esprom

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzSLIPDecoder feeds arbitrary streams: the decoder never panics, every
// packet it returns survives framing again unchanged, and a framed payload
// appended to the garbage is always recovered (the garbage cannot swallow
// it: the frame starts with C0).
func FuzzSLIPDecoder(f *testing.F) {
	f.Add([]byte("waiting for download\r\n"), []byte{1, 2, 3})
	f.Add([]byte{0xC0, 0xDB}, []byte{0xC0, 0xDB, 0xDC, 0xDD})
	f.Add(AppendSLIP(nil, AppendResponse(nil, OpSync, SyncValue, nil, 0, 0, 4)), []byte{})
	f.Add([]byte{0xDB, 0xDB, 0xC0, 0xC0, 0x00}, AppendRequest(nil, OpSync, 0, SyncPayload))
	f.Fuzz(func(t *testing.T, garbage, payload []byte) {
		var d SLIPDecoder
		for _, b := range garbage {
			p, _ := d.Feed(b)
			if p == nil {
				continue
			}
			var d2 SLIPDecoder
			var again []byte
			for _, c := range AppendSLIP(nil, p) {
				if q, err := d2.Feed(c); err != nil {
					t.Fatalf("re-decoding % X: %v", p, err)
				} else if q != nil {
					again = append([]byte(nil), q...)
				}
			}
			if !bytes.Equal(again, p) {
				t.Fatalf("packet % X framed and decoded again = % X", p, again)
			}
		}
		if len(payload) == 0 || len(payload) > MaxPacket {
			return
		}
		// End whatever packet the garbage left open, then send the payload.
		var got []byte
		stream := append([]byte{0xC0}, AppendSLIP(nil, payload)...)
		for _, b := range stream {
			if p, _ := d.Feed(b); p != nil {
				got = append([]byte(nil), p...)
			}
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("after garbage % X, payload % X decoded as % X", garbage, payload, got)
		}
	})
}

// FuzzDecodeResponse decodes arbitrary packets: it never panics, a packet
// it accepts has a consistent length, a successful answer carries exactly
// the data asked for, and encoding what it decoded gives the packet back.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, OpReadReg, 0x00F01D83, nil, 0, 0, 4), uint8(4), int8(0))
	f.Add(AppendResponse(nil, OpSPIFlashMD5, 0, []byte("0123456789abcdef0123456789abcdef"), 0, 0, 2), uint8(2), int8(32))
	f.Add(AppendResponse(nil, OpFlashData, 0, nil, 1, CodeBadCRC, 2), uint8(0), int8(-1))
	f.Add([]byte{1, 0x0A, 0xFF, 0xFF, 0, 0, 0, 0}, uint8(4), int8(0))
	f.Fuzz(func(t *testing.T, pkt []byte, statusLen uint8, dataLen int8) {
		sl := int(statusLen % 5)
		dl := int(dataLen)
		if dl < -1 {
			dl = -1
		}
		r, err := DecodeResponse(pkt, sl, dl)
		if err != nil {
			return
		}
		if int(binary.LittleEndian.Uint16(pkt[2:])) != len(pkt)-8 || pkt[0] != 1 || r.Op != pkt[1] {
			t.Fatalf("DecodeResponse accepted % X with an inconsistent header", pkt)
		}
		if r.Status == 0 && dl >= 0 && len(r.Data) != dl {
			t.Fatalf("DecodeResponse(% X, %d, %d) returned %d data bytes", pkt, sl, dl, len(r.Data))
		}
		if r.Status == 0 {
			used := sl
			if used == 0 {
				used = len(pkt) - 8 - len(r.Data)
			}
			st := pkt[len(pkt)-used:]
			again := AppendResponse(nil, r.Op, r.Value, r.Data, r.Status, r.Code, used)
			if bytes.Equal(st[2:], make([]byte, used-2)) && !bytes.Equal(again, pkt) {
				t.Fatalf("re-encoding %+v = % X, want % X", r, again, pkt)
			}
		}
	})
}
