package esprom_test

import (
	"context"
	"fmt"
	"log"

	"github.com/unbrick/unbrick/bootloader/esprom"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// Example identifies a unit and flashes it: sync, read its chip and MAC,
// attach the flash, write compressed with delta, verify by MD5, start it.
// The unit here is the simulated ESP32 on an in-memory link; on a bench the
// port is a serial port opened at 115200 8N1, and Options.Reset holds GPIO0
// low while it pulses EN (or runs ClassicReset on the adapter's DTR/RTS).
func Example() {
	m, err := espsim.New("esp32", espsim.Options{MAC: [6]byte{0x24, 0x0A, 0xC4, 0x01, 0x02, 0x03}})
	if err != nil {
		log.Fatal(err)
	}
	host, dev := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(dev)
	unit := sim.NewDevice("slot1", m, line)
	defer unit.Close()
	unit.SetBoot(true) // GPIO0 low: download mode
	unit.SetPower(true)

	ctx := context.Background()
	c := esprom.New(host, esprom.Options{})
	if err := c.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	info, err := c.Identify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info)
	if err := c.SPIAttach(ctx); err != nil {
		log.Fatal(err)
	}
	img, _ := espsim.AppImage("esp32", "2.0", "meter-e", 100<<10)
	res, err := c.Flash(ctx, 0x1000, img, esprom.FlashOptions{Compress: true, Delta: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Verify(ctx, 0x1000, img); err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("flashed %d of %d bytes into %s\n", res.Written, len(img), info.Serial())
	// Output:
	// ESP32, MAC 24:0A:C4:01:02:03
	// flashed 102400 of 102400 bytes into 24:0A:C4:01:02:03
}
