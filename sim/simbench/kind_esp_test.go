package simbench

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// espUnit adds a unit of kind k in state st to a bench and links its line
// to an in-memory pipe.
func espUnit(t *testing.T, k Kind, st State) (*Unit, *sim.PipeHost) {
	t.Helper()
	b, err := New(t.TempDir(), []*Kind{&k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	u, err := b.Add(Spec{Slot: 1, Kind: k.Name, Board: DemoBoard(k.Name), State: st, Version: "1.0.0", Seed: 9, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	host.SetBaud(115200)
	u.Device.Line.Attach(pd)
	return u, host
}

func readFor(host *sim.PipeHost, d time.Duration) []byte {
	var got []byte
	buf := make([]byte, 512)
	host.SetReadTimeout(d)
	for {
		n, _ := host.Read(buf)
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}

func TestESPKindsBoot(t *testing.T) {
	tests := []struct {
		kind  Kind
		state State
		want  string
	}{
		{ESP32, Good, "meter-e firmware v1.0.0"},
		{ESP32, Bricked, "checksum failure"},
		{ESP32, AppOnly, "checksum failure"},
		{ESP32, Erased, "invalid header: 0xffffffff"},
		{ESP8266, Good, "plug-d firmware v1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.Name+"/"+string(tt.state), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u, host := espUnit(t, tt.kind, tt.state)
				u.Power.Out(pgpio.High)
				got := readFor(host, 300*time.Millisecond)
				if !bytes.Contains(got, []byte(tt.want)) {
					t.Errorf("a %s unit powered on prints %q, want %q", tt.state, got, tt.want)
				}
			})
		})
	}
}

// TestESPKindAppOnlyIsADelta: an app-bad ESP32 unit gets only one chunk of
// its image rewritten, and its strap line enters download mode when low.
func TestESPKindAppOnlyIsADelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, host := espUnit(t, ESP32, AppOnly)
		u.Boot.Out(ESP32.Strap)
		u.Power.Out(pgpio.High)
		c := esprom.New(host, esprom.Options{})
		ctx := context.Background()
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() with GPIO0 low = %v", err)
		}
		info, err := c.Identify(ctx)
		if err != nil || info.Magic != ESP32.Chip || info.Serial() != u.Model.(*espsim.Model).Serial() {
			t.Fatalf("Identify() = %v, %v; want chip %#x", info, err, ESP32.Chip)
		}
		if err := c.SPIAttach(ctx); err != nil {
			t.Fatal(err)
		}
		img, off, err := ESP32.Image("1.0.0", DemoBoard("esp32"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Flash(ctx, off, img, esprom.FlashOptions{Compress: true, Delta: true, Chunk: 16 << 10}, nil)
		if err != nil || res.Skipped != res.Chunks-1 || res.Written != 16<<10 {
			t.Fatalf("Flash() = %+v, %v; want all but one 16 KiB chunk skipped", res, err)
		}
		if err := c.Verify(ctx, off, img); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
	})
}
