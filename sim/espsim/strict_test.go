package espsim

import (
	"context"
	"encoding/binary"
	"testing"
	"testing/synctest"

	"github.com/unbrick/unbrick/bootloader/esprom"
)

// setParams builds SPI_SET_PARAMS's data as esptool's flash_set_parameters
// does.
func setParams(size uint32) []byte {
	var d []byte
	for _, w := range []uint32{0, size, 64 << 10, esprom.SectorSize, 256, 0xFFFF} {
		d = binary.LittleEndian.AppendUint32(d, w)
	}
	return d
}

// TestROMAssumes2MiB: the ESP32 ROM takes the flash for 2 MiB until
// SPI_SET_PARAMS says otherwise, whatever the chip holds; its erase, MD5
// and read refuse to pass that, and work once the size is set.
func TestROMAssumes2MiB(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{FlashSize: 4 << 20})
		u.connect()
		past := []struct {
			name string
			op   byte
			data []byte
		}{
			{"FLASH_BEGIN across 2 MiB", esprom.OpFlashBegin, beginWords(0x2000, 2, 0x400, ROMFlashSize-0x1000)},
			{"SPI_FLASH_MD5 past 2 MiB", esprom.OpSPIFlashMD5, beginWords(ROMFlashSize, 0x1000, 0, 0)},
			{"READ_FLASH_SLOW past 2 MiB", esprom.OpReadFlashSlow, beginWords(ROMFlashSize, 64, 0, 0)[:8]},
		}
		for _, p := range past {
			send(t, u, p.op, 0, p.data)
			expectStatus(t, u, p.op, 1, esprom.CodeFailedToAct)
		}
		// Inside 2 MiB all is well.
		send(t, u, esprom.OpSPIFlashMD5, 0, beginWords(ROMFlashSize-0x1000, 0x1000, 0, 0))
		expectStatus(t, u, esprom.OpSPIFlashMD5, 0, 0)
		send(t, u, esprom.OpSPISetParams, 0, setParams(4<<20))
		expectStatus(t, u, esprom.OpSPISetParams, 0, 0)
		for _, p := range past {
			send(t, u, p.op, 0, p.data)
			expectStatus(t, u, p.op, 0, 0)
		}
	})
}

// TestAttachFlashSetsTheSize: the client reads the JEDEC ID through the
// SPI controller's registers and sends SPI_SET_PARAMS with the size it
// gives, after which writing and hashing past 2 MiB work.
func TestAttachFlashSetsTheSize(t *testing.T) {
	for _, size := range []int{4 << 20, 16 << 20} {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "esp32", Options{FlashSize: size})
			u.dev.SetPower(true)
			c := u.client(esprom.Options{})
			ctx := context.Background()
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Identify(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := c.AttachFlash(ctx)
			if err != nil || got != uint32(size) {
				t.Fatalf("AttachFlash() = %d, %v, want %d", got, err, size)
			}
			data := appImage(t, "esp32", "1", 8<<10)
			at := uint32(size) - 0x4000
			if err := c.WriteFlash(ctx, at, data, nil); err != nil {
				t.Fatalf("WriteFlash(0x%X) = %v", at, err)
			}
			if err := c.Verify(ctx, at, data); err != nil {
				t.Fatalf("Verify(0x%X) = %v", at, err)
			}
		})
	}
}

// TestSPIPinsFromEfuse: a unit whose flash is on other pins than the
// default ones records them in eFuse; SPI_ATTACH with 0 leaves the flash
// unreachable (RDID reads all ones, FLASH_BEGIN fails), and the client,
// which reads the eFuse as the flasher stub does, attaches it.
func TestSPIPinsFromEfuse(t *testing.T) {
	pins := esprom.SPIPins{CLK: 14, Q: 12, D: 13, HD: 4, CS0: 15} // the HSPI pins, wired by hand
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "esp32", Options{SPIPins: pins})
		c, _ := u.connect() // SPIAttach: the default pins
		ctx := context.Background()
		if id, err := c.FlashID(ctx); err != nil || id != 0xFFFFFF {
			t.Fatalf("FlashID() after SPI_ATTACH 0 = %06X, %v, want FFFFFF (nothing on the default pins)", id, err)
		}
		if err := c.EraseRegion(ctx, 0x10000, 0x1000); err == nil {
			t.Fatalf("EraseRegion() after SPI_ATTACH 0 = nil, want the ROM to refuse")
		}
		arg, err := c.SPIAttachArg(ctx)
		if err != nil || arg != pins.Packed() {
			t.Fatalf("SPIAttachArg() = %08X, %v, want %08X", arg, err, pins.Packed())
		}
		if size, err := c.AttachFlash(ctx); err != nil || size != 4<<20 {
			t.Fatalf("AttachFlash() = %d, %v, want 4 MiB", size, err)
		}
		if err := c.EraseRegion(ctx, 0x10000, 0x1000); err != nil {
			t.Fatalf("EraseRegion() after attaching the eFuse's pins = %v", err)
		}
	})
}
