package stm32_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// unit starts the model in its bootloader on a fast in-memory link and
// returns a synced, identified client.
func unit(t testing.TB, m *stm32sim.Model) (*stm32.Client, stm32.Part) {
	t.Helper()
	host, dev := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(dev)
	d := sim.NewDevice("slot", m, line)
	t.Cleanup(func() { d.Close() })
	d.SetBoot(true)
	d.SetPower(true)
	c := stm32.New(host, stm32.Options{})
	ctx := context.Background()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, info.Part
}

// sparse returns n bytes whose odd 256-byte blocks are all 0xFF.
func sparse(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if i/stm32.MaxBlock%2 == 1 {
			b[i] = 0xFF
		} else {
			b[i] = byte(i*7 + 1)
		}
	}
	return b
}

func TestWriteMemorySkipsErasedBlocks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		checksum bool
		erase    bool // the client erases first
		want     int  // WRITEs the model sees
	}{
		{"erased by the client", false, true, 5},
		{"erased, GET_CHECKSUM verify", true, true, 5},
		{"not erased by the client", false, false, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := stm32sim.New("stm32f103", stm32sim.Options{Checksum: tc.checksum})
			if err != nil {
				t.Fatal(err)
			}
			c, p := unit(t, m)
			img := sparse(10 * stm32.MaxBlock)
			if tc.erase {
				if err := c.EraseRegion(ctx, p, p.FlashBase, uint32(len(img))); err != nil {
					t.Fatal(err)
				}
			} else {
				// Blank flash the client did not erase itself: it cannot
				// know, so it sends every block.
				m.Flash().EraseAll()
			}
			before := m.Stats().BlocksWritten
			if err := c.WriteMemory(ctx, p.FlashBase, img, nil); err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().BlocksWritten - before; got != tc.want {
				t.Errorf("WriteMemory(sparse) sent %d WRITEs, want %d", got, tc.want)
			}
			if err := c.Verify(ctx, p.FlashBase, img, nil); err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
		})
	}
}

func TestWriteMemoryRewritesBlankAfterWrite(t *testing.T) {
	// A block all 0xFF over bytes written since the erase must be sent
	// (and then fails verify: flash bits only clear). The client must not
	// think the region blank once it has written there.
	ctx := context.Background()
	m, err := stm32sim.New("stm32f103", stm32sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, p := unit(t, m)
	if err := c.EraseRegion(ctx, p, p.FlashBase, 1024); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMemory(ctx, p.FlashBase, bytes.Repeat([]byte{0x00}, 256), nil); err != nil {
		t.Fatal(err)
	}
	before := m.Stats().BlocksWritten
	ff := bytes.Repeat([]byte{0xFF}, 256)
	_ = c.WriteMemory(ctx, p.FlashBase, ff, nil)
	if got := m.Stats().BlocksWritten - before; got != 1 {
		t.Errorf("WriteMemory(0xFF over written bytes) sent %d WRITEs, want 1", got)
	}
	if err := c.Verify(ctx, p.FlashBase, ff, nil); err == nil {
		t.Errorf("Verify(0xFF over 0x00) = nil, want a mismatch")
	}
}
