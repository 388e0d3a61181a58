package avr

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeReply(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		n    int
		want []byte
		err  error
	}{
		{"empty answer", []byte{0x14, 0x10}, 0, []byte{}, nil},
		{"signature", []byte{0x14, 0x1E, 0x95, 0x0F, 0x10}, 3, []byte{0x1E, 0x95, 0x0F}, nil},
		{"no sync", []byte{0x15}, 3, nil, ErrNoSync},
		{"not in sync", []byte{0x00, 0x10}, 0, nil, ErrNotInSync},
		{"nothing", nil, 0, nil, ErrNotInSync},
		{"failed", []byte{0x14, 0x03, 0x11}, 1, nil, ErrFailed},
		{"wrong terminator", []byte{0x14, 0x03, 0x20}, 1, nil, ErrBadTerminator},
		{"short", []byte{0x14, 0x10}, 1, nil, nil},
		{"long", []byte{0x14, 0x01, 0x02, 0x10}, 1, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReply(CmdReadSign, tt.raw, tt.n)
			if tt.want != nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("DecodeReply(% X, %d) = % X, %v; want % X, nil", tt.raw, tt.n, got, err, tt.want)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("DecodeReply(% X, %d) error = %v, want a *ProtocolError", tt.raw, tt.n, err)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("DecodeReply(% X, %d) error = %v, want %v", tt.raw, tt.n, err, tt.err)
			}
			if pe.Cmd != CmdReadSign || !bytes.Equal(pe.Got, tt.raw) {
				t.Errorf("ProtocolError = %+v, want Cmd READ_SIGN and Got % X", pe, tt.raw)
			}
		})
	}
}

// FuzzDecodeReply checks that the decoder never panics, accepts exactly the
// well-formed answers and round-trips them through EncodeReply.
func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte{0x14, 0x10}, 0)
	f.Add([]byte{0x14, 0x1E, 0x95, 0x0F, 0x10}, 3)
	f.Add([]byte{0x15}, 1)
	f.Add([]byte{0x14, 0x00, 0x11}, 1)
	f.Add([]byte{0x14, 0x14, 0x10, 0x10}, 2)
	f.Add([]byte{}, -1)
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		data, err := DecodeReply(CmdReadPage, raw, n)
		wellFormed := n >= 0 && len(raw) == n+2 && raw[0] == RespInSync && raw[n+1] == RespOK
		if wellFormed != (err == nil) {
			t.Fatalf("DecodeReply(% X, %d) error = %v, well-formed %v", raw, n, err, wellFormed)
		}
		if err != nil {
			return
		}
		if len(data) != n {
			t.Fatalf("DecodeReply(% X, %d) returned %d bytes", raw, n, len(data))
		}
		if enc := EncodeReply(data); !bytes.Equal(enc, raw) {
			t.Fatalf("EncodeReply(DecodeReply(% X)) = % X", raw, enc)
		}
	})
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name string
		sig  [3]byte
		want string
		size int
	}{
		{"m328p", [3]byte{0x1E, 0x95, 0x0F}, "ATmega328P", 32 * 1024},
		{"ATmega2560", [3]byte{0x1E, 0x98, 0x01}, "ATmega2560", 256 * 1024},
		{"atmega168", [3]byte{0x1E, 0x94, 0x06}, "ATmega168", 16 * 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := LookupName(tt.name)
			if !ok || p.Name != tt.want || p.FlashSize != tt.size {
				t.Fatalf("LookupName(%q) = %v, %v; want %s", tt.name, p, ok, tt.want)
			}
			q, ok := LookupSignature(tt.sig)
			if !ok || q.Name != tt.want {
				t.Fatalf("LookupSignature(% X) = %v, %v; want %s", tt.sig, q, ok, tt.want)
			}
			if p.BootStart()%p.PageSize != 0 || p.BootStart() >= p.FlashSize {
				t.Errorf("%s: boot section at 0x%X is not page-aligned inside flash", p.Name, p.BootStart())
			}
		})
	}
	if _, ok := LookupSignature([3]byte{0xFF, 0xFF, 0xFF}); ok {
		t.Error("LookupSignature(FF FF FF) found a part")
	}
	if p, _ := LookupName("m2560"); !p.ExtendedAddressing() || p.MaxPageLen() != 65535 {
		t.Errorf("ATmega2560: extended addressing %v, max page length %d; want true, 65535", p.ExtendedAddressing(), p.MaxPageLen())
	}
	if p, _ := LookupName("m328p"); p.ExtendedAddressing() || p.MaxPageLen() != 256 || p.BootStart() != 0x7E00 {
		t.Errorf("ATmega328P: extended %v, max page %d, boot 0x%X; want false, 256, 0x7E00", p.ExtendedAddressing(), p.MaxPageLen(), p.BootStart())
	}
}
