package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec string
		want Faults
	}{
		{"", Faults{}},
		{"ber=1e-4,drop=0.001", Faults{BitErrors: 1e-4, Drops: 0.001}},
		{"stop=3000,adapter-silent", Faults{StopAfter: 3000, AdapterSilent: true}},
		{"brownout=2048,slow-erase=2s,bad-page=0x08000400", Faults{Brownout: 2048, SlowErase: 2 * time.Second, BadPage: 0x08000400, HasBadPage: true}},
		{"wrong-version=0.9.0,nack=5,flap=500ms,flap-after=100,seed=7", Faults{WrongVersion: "0.9.0", NACKs: 5, Flap: 500 * time.Millisecond, FlapAfter: 100, Seed: 7}},
	}
	for _, tt := range tests {
		got, err := ParseFaults(tt.spec)
		if err != nil || got != tt.want {
			t.Errorf("ParseFaults(%q) = %+v, %v, want %+v", tt.spec, got, err, tt.want)
			continue
		}
		if back, err := ParseFaults(got.String()); err != nil || back != got {
			t.Errorf("ParseFaults(%q.String() = %q) = %+v, %v, want %+v", tt.spec, got.String(), back, err, got)
		}
	}
	for _, tt := range []struct{ spec, want string }{
		{"ber=2", "column 1: ber=\"2\""},
		{"stop=10,jitter=1", "column 9: unknown fault \"jitter\""},
		{"stop", "stop needs a value"},
		{"adapter-silent=1", "takes no value"},
		{"bad-page=zz", "want an address"},
	} {
		if _, err := ParseFaults(tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFaults(%q) = %v, want an error saying %q", tt.spec, err, tt.want)
		}
	}
}

func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"", "ber=1e-4", "stop=3000,adapter-silent", "bad-page=0x100,brownout=10", "flap=1s,flap-after=2,seed=3", "wrong-version=1.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFaults(s)
		if err != nil {
			return
		}
		back, err := ParseFaults(got.String())
		if err != nil || back != got {
			t.Fatalf("ParseFaults(%q) = %+v; its String %q reads back as %+v, %v", s, got, got.String(), back, err)
		}
	})
}

// TestLineFaults: bit errors and drops change what crosses the line at
// about their rate; a unit that stops answering hears and says nothing
// until it is halted.
func TestLineFaults(t *testing.T) {
	lf := &lineFault{f: Faults{BitErrors: 0.01, Drops: 0.01}}
	lf.rng = newFaultRand(1)
	in := bytes.Repeat([]byte{0x55}, 100000)
	out := lf.noise(append([]byte(nil), in...))
	dropped := len(in) - len(out)
	flipped := 0
	for _, c := range out {
		if c != 0x55 {
			flipped++
		}
	}
	if dropped < 700 || dropped > 1300 || flipped < 700 || flipped > 1300 {
		t.Errorf("1%% drops and bit errors over 100000 bytes: %d dropped, %d flipped, want about 1000 each", dropped, flipped)
	}

	lf = &lineFault{f: Faults{StopAfter: 10}, rng: newFaultRand(1)}
	if got := lf.received(make([]byte, 8)); len(got) != 8 {
		t.Fatalf("before the stop: %d bytes arrived, want 8", len(got))
	}
	if got := lf.received(make([]byte, 8)); len(got) != 2 {
		t.Fatalf("at the stop: %d bytes arrived, want the 2 up to it", len(got))
	}
	if got, sent := lf.received(make([]byte, 8)), lf.sent([]byte("ack")); len(got) != 0 || len(sent) != 0 {
		t.Fatalf("after the stop: heard %d, said %d bytes, want nothing", len(got), len(sent))
	}
	lf.halted()
	if got, sent := lf.received(make([]byte, 8)), lf.sent([]byte("ack")); len(got) != 8 || len(sent) != 3 {
		t.Fatalf("after a reset: heard %d, said %d bytes, want all (the stop fires once)", len(got), len(sent))
	}
}

// TestFlashFaults: a bad page keeps its old bytes; a brownout programs up
// to its count and cuts the power once.
func TestFlashFaults(t *testing.T) {
	f := NewFlash(0x1000, Uniform(4, 256))
	cuts := 0
	f.SetFaults(Faults{BadPage: 0x1100, HasBadPage: true, Brownout: 600}, func() { cuts++ })
	data := bytes.Repeat([]byte{0x00}, 1024)
	if _, err := f.Program(0x1000, data[:512]); err != nil {
		t.Fatal(err)
	}
	got := f.Snapshot()
	if !bytes.Equal(got[:256], data[:256]) || !bytes.Equal(got[256:512], bytes.Repeat([]byte{0xFF}, 256)) {
		t.Error("the bad page took the program, or the good page did not")
	}
	if _, err := f.Program(0x1200, data[512:]); err != nil {
		t.Fatal(err)
	}
	got = f.Snapshot()
	if cuts != 1 || !bytes.Equal(got[512:600], data[:88]) || got[600] != 0xFF {
		t.Errorf("brownout at 600 bytes: %d power cuts, flash[512:601] = % X..., want 1 cut and the first 88 bytes of the second program kept", cuts, got[596:601])
	}
}
