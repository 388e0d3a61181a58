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
	host, dev := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(dev)
	d := sim.NewDevice("slot", m, line)
	defer d.Close()
	d.SetPower(true)
	c := avr.New(host, avr.Options{Reset: func(context.Context) error {
		d.SetReset(true)
		d.SetReset(false)
		return nil
	}})
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
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
