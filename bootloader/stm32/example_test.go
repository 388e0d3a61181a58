package stm32_test

import (
	"context"
	"fmt"
	"log"

	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// Example identifies a unit and flashes it: sync, read its ID, erase what
// the image covers, write, verify, start it. The unit here is the simulated
// STM32F103 on an in-memory link; on a bench the port is a serial port
// opened at 115200 8E1.
func Example() {
	m, err := stm32sim.New("stm32f103", stm32sim.Options{UID: [12]byte{0x31, 0x00, 0x42, 0x00, 0x07, 'Q', '7', 'A', '5', '3', '2', '1'}})
	if err != nil {
		log.Fatal(err)
	}
	host, dev := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(dev)
	unit := sim.NewDevice("slot1", m, line)
	defer unit.Close()
	unit.SetBoot(true) // BOOT0 high: the system bootloader runs
	unit.SetPower(true)

	ctx := context.Background()
	c := stm32.New(host, stm32.Options{})
	if err := c.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	info, err := c.Identify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info)
	img, _ := stm32sim.AppImage("stm32f103", "2.0", "sensor-b", 10000)
	p := info.Part
	if err := c.EraseRegion(ctx, p, p.FlashBase, uint32(len(img))); err != nil {
		log.Fatal(err)
	}
	if err := c.WriteMemory(ctx, p.FlashBase, img, nil); err != nil {
		log.Fatal(err)
	}
	if err := c.Verify(ctx, p.FlashBase, img, nil); err != nil {
		log.Fatal(err)
	}
	if err := c.Go(ctx, p.FlashBase); err != nil {
		log.Fatal(err)
	}
	fmt.Println("flashed", len(img), "bytes into", info.Serial())
	// Output:
	// STM32F10xxx Medium-density (PID 0x410, 128 KiB flash), bootloader v2.2, UID 310042000751374135333231
	// flashed 10000 bytes into 310042000751374135333231
}
