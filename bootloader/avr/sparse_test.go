package avr_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
)

// TestWritePagesSkipsBlankPages writes an image whose odd pages are all
// 0xFF over a unit whose flash holds an old application in its first four
// pages: optiboot erases only the pages it is sent, so the old pages that
// must become 0xFF are written, and pages already blank are not.
func TestWritePagesSkipsBlankPages(t *testing.T) {
	ctx := context.Background()
	const pages = 10
	old := bytes.Repeat([]byte{0x5A}, 4*128)
	m, err := avrsim.New("atmega328p", avrsim.Options{Image: old})
	if err != nil {
		t.Fatal(err)
	}
	c := syncedClient(t, m)
	p, err := c.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps := p.PageSize
	img := make([]byte, pages*ps-7) // the last page partial, padded
	for i := range img {
		if i/ps%2 == 1 {
			img[i] = 0xFF
		} else {
			img[i] = byte(i)
		}
	}
	before := m.Stats().PagesWritten
	if err := c.WritePages(ctx, 0, img, nil); err != nil {
		t.Fatal(err)
	}
	// Pages 0, 2, 4, 6, 8 hold data; 1 and 3 are 0xFF over the old
	// application; 5, 7, 9 are 0xFF over blank flash.
	if got, want := m.Stats().PagesWritten-before, 7; got != want {
		t.Errorf("WritePages(half 0xFF) programmed %d pages, want %d", got, want)
	}
	if got, want := c.SkippedPages(), 3; got != want {
		t.Errorf("SkippedPages() = %d, want %d", got, want)
	}
	if err := c.Verify(ctx, 0, img, nil); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	got, err := m.Flash().Read(0, len(img))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Errorf("flash after WritePages differs from the image")
	}
	// Writing over a page remembered blank forgets it: Verify reads it
	// again and finds it differs from the image.
	if err := c.WritePages(ctx, uint32(5*ps), bytes.Repeat([]byte{1}, ps), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, 0, img, nil); err == nil {
		t.Errorf("Verify after overwriting a blank page = nil, want a mismatch at 0x%05X", 5*ps)
	}
}

// TestReadsWholeBlocks: flash is read 256 bytes (two ATmega328P pages) per
// LOAD_ADDRESS and READ_PAGE, in a verify and when WritePages looks at
// consecutive pages the image wants blank; each page is read once.
func TestReadsWholeBlocks(t *testing.T) {
	ctx := context.Background()
	m, err := avrsim.New("atmega328p", avrsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := syncedClient(t, m)
	if _, err := c.Identify(ctx); err != nil {
		t.Fatal(err)
	}
	// Pages 0-3 data, 4-7 0xFF over blank flash.
	img := bytes.Repeat([]byte{0xFF}, 8*128)
	for i := range 4 * 128 {
		img[i] = byte(i)
	}
	commands := func() int { return m.Stats().Commands }
	before := commands()
	if err := c.WritePages(ctx, 0, img, nil); err != nil {
		t.Fatal(err)
	}
	// 4 pages written (LOAD_ADDRESS, PROG_PAGE), pages 4-7 read in two
	// reads (LOAD_ADDRESS, READ_PAGE of 256 bytes).
	if got, want := commands()-before, 4*2+2*2; got != want {
		t.Errorf("WritePages(4 pages of data, 4 of 0xFF) sent %d commands, want %d", got, want)
	}
	if got, want := c.SkippedPages(), 4; got != want {
		t.Errorf("SkippedPages() = %d, want %d", got, want)
	}
	before = commands()
	if err := c.Verify(ctx, 0, img, nil); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	// Pages 4-7 were read back before; pages 0-3 in two reads.
	if got, want := commands()-before, 2*2; got != want {
		t.Errorf("Verify sent %d commands, want %d", got, want)
	}
	// A read from the second page of a block stops at the block's end.
	before = commands()
	got, err := c.ReadFlash(ctx, 128, 3*128, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img[128:4*128]) {
		t.Errorf("ReadFlash(0x80, 384) differs from what was written")
	}
	if got, want := commands()-before, 2*2; got != want {
		t.Errorf("ReadFlash(0x80, 384) sent %d commands, want %d (128 bytes to the block's end, then 256)", got, want)
	}
}

// TestWritePagesLooksFromTheTop: a run of pages the image wants blank is
// read from its top down, and below the first page found holding the old
// image the run is written without a look (flash fills from the bottom).
func TestWritePagesLooksFromTheTop(t *testing.T) {
	tests := []struct {
		name                string
		old                 int // pages of old image at the bottom of flash
		wantCmds, wantProgs int
	}{
		// Image: data in pages 0-1, 0xFF in pages 2-7.
		// Old image in pages 0-5: read 6-7 (blank), read 4-5 (held),
		// write 2-5 unread: 2 data writes + 2 reads + 4 writes.
		{"old image reaches into the run", 6, 2*2 + 2*2 + 4*2, 6},
		// Old image in pages 0-2 only: read 6-7, 4-5 (blank), 2-3 (2
		// held, 3 blank): page 2 written.
		{"old image ends inside a read", 3, 2*2 + 3*2 + 1*2, 3},
		// Blank unit: the whole run read, nothing written there.
		{"blank unit", 0, 2*2 + 3*2, 2},
		// Old image over everything: one read, the rest written unread.
		{"old image over the whole run", 8, 2*2 + 1*2 + 6*2, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			m, err := avrsim.New("atmega328p", avrsim.Options{Image: bytes.Repeat([]byte{0x5A}, tt.old*128)})
			if err != nil {
				t.Fatal(err)
			}
			c := syncedClient(t, m)
			if _, err := c.Identify(ctx); err != nil {
				t.Fatal(err)
			}
			img := bytes.Repeat([]byte{0xFF}, 8*128)
			for i := range 2 * 128 {
				img[i] = byte(i)
			}
			cmds, progs := m.Stats().Commands, m.Stats().PagesWritten
			if err := c.WritePages(ctx, 0, img, nil); err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().Commands - cmds; got != tt.wantCmds {
				t.Errorf("WritePages sent %d commands, want %d", got, tt.wantCmds)
			}
			if got := m.Stats().PagesWritten - progs; got != tt.wantProgs {
				t.Errorf("WritePages programmed %d pages, want %d", got, tt.wantProgs)
			}
			if err := c.Verify(ctx, 0, img, nil); err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
			got, err := m.Flash().Read(0, len(img))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Errorf("flash after WritePages differs from the image")
			}
		})
	}
}

// syncedClient plugs model m into a fast line and returns a client synced
// with it, its Reset hook pulsing the model's reset.
func syncedClient(t *testing.T, m sim.Model) *avr.Client {
	t.Helper()
	host, dev := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(dev)
	d := sim.NewDevice("slot", m, line)
	t.Cleanup(func() { d.Close() })
	d.SetPower(true)
	c := avr.New(host, avr.Options{Reset: func(context.Context) error {
		d.SetReset(true)
		d.SetReset(false)
		return nil
	}})
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}
