package esprom

import (
	"context"
	"encoding/binary"
	"fmt"
)

// SPI flash commands and controller bits esptool's run_spiflash_command
// uses.
const (
	spiCmdUSR      = 1 << 18 // SPI_CMD_REG: start the user command; the controller clears it when done
	spiUsrCommand  = 1 << 31 // SPI_USR_REG: send a command phase
	spiUsrMISO     = 1 << 28 // SPI_USR_REG: read a data phase
	spiCmdLenShift = 28      // SPI_USR2_REG: command length - 1
	flashRDID      = 0x9F    // JEDEC read identification
)

// FlashID runs the SPI flash's RDID command (9F) through the ROM's
// register commands, as esptool's flash_id does: the SPI controller's user
// command with an 8-bit command phase and a 24-bit read, then the answer
// from its first data register. The result is manufacturer |
// memory type<<8 | capacity<<16 (a Winbond W25Q32: 0x1640EF).
func (c *Client) FlashID(ctx context.Context) (uint32, error) {
	if err := c.needChip(OpWriteReg); err != nil {
		return 0, err
	}
	r := c.chip.SPI
	if r.Base == 0 {
		return 0, fmt.Errorf("esprom: RDID: the %s's SPI controller is unknown to the client", c.chip.Name)
	}
	reg := func(off uint32) uint32 { return r.Base + off }
	oldUsr, err := c.ReadReg(ctx, reg(r.Usr))
	if err != nil {
		return 0, fmt.Errorf("esprom: RDID: %w", err)
	}
	oldUsr2, err := c.ReadReg(ctx, reg(r.Usr2))
	if err != nil {
		return 0, fmt.Errorf("esprom: RDID: %w", err)
	}
	const readBits = 24
	writes := [][2]uint32{}
	if r.MosiDlen != 0 {
		writes = append(writes, [2]uint32{reg(r.MisoDlen), readBits - 1})
	} else {
		// The ESP8266 keeps the data lengths in USR1: MISO at bit 8.
		writes = append(writes, [2]uint32{reg(r.Usr1), (readBits - 1) << 8})
	}
	writes = append(writes,
		[2]uint32{reg(r.Usr), spiUsrCommand | spiUsrMISO},
		[2]uint32{reg(r.Usr2), 7<<spiCmdLenShift | flashRDID},
		[2]uint32{reg(r.W0), 0},
		[2]uint32{r.Base, spiCmdUSR})
	for _, w := range writes {
		if err := c.WriteReg(ctx, w[0], w[1], 0xFFFFFFFF, 0); err != nil {
			return 0, fmt.Errorf("esprom: RDID: %w", err)
		}
	}
	done := false
	for range 10 { // esptool polls ten times
		v, err := c.ReadReg(ctx, r.Base)
		if err != nil {
			return 0, fmt.Errorf("esprom: RDID: %w", err)
		}
		if v&spiCmdUSR == 0 {
			done = true
			break
		}
	}
	if !done {
		return 0, fmt.Errorf("esprom: RDID: the SPI controller never finished the command")
	}
	id, err := c.ReadReg(ctx, reg(r.W0))
	if err != nil {
		return 0, fmt.Errorf("esprom: RDID: %w", err)
	}
	for _, w := range [][2]uint32{{reg(r.Usr), oldUsr}, {reg(r.Usr2), oldUsr2}} {
		if err := c.WriteReg(ctx, w[0], w[1], 0xFFFFFFFF, 0); err != nil {
			return 0, fmt.Errorf("esprom: RDID: %w", err)
		}
	}
	return id & 0xFFFFFF, nil
}

// FlashSizeFromID returns the size in bytes a JEDEC ID's capacity byte
// gives (log2 of the size: 0x16 is 4 MiB), or 0 when the ID says nothing
// (no flash answering: 0x000000 or 0xFFFFFF). esptool's
// DETECTED_FLASH_SIZES maps 0x12..0x1C and the 0x32..0x3A variants of
// some makers; both are covered.
func FlashSizeFromID(id uint32) uint32 {
	if id == 0 || id == 0xFFFFFF {
		return 0
	}
	code := id >> 16 & 0xFF
	if code >= 0x32 && code <= 0x3A {
		code -= 0x20
	}
	if code < 0x12 || code > 0x1C {
		return 0
	}
	return 1 << code
}

// SetFlashSize tells the ROM the flash's size with SPI_SET_PARAMS (id 0,
// the size, 64 KiB blocks, 4 KiB sectors, 256-byte pages, status mask
// FFFF, as esptool's flash_set_parameters). Until then the ESP32 ROM
// assumes 2 MiB and refuses to erase, write, hash or read past it.
func (c *Client) SetFlashSize(ctx context.Context, size uint32) error {
	if err := c.needChip(OpSPISetParams); err != nil {
		return err
	}
	if !c.chip.Attach {
		return c.unsupported(OpSPISetParams, "it takes the flash as it finds it")
	}
	d := binary.LittleEndian.AppendUint32(nil, 0)
	for _, v := range []uint32{size, 64 << 10, SectorSize, 256, 0xFFFF} {
		d = binary.LittleEndian.AppendUint32(d, v)
	}
	if _, err := c.command(ctx, OpSPISetParams, 0, d, 0, 0, 0); err != nil {
		return err
	}
	c.opts.FlashSize = size
	return nil
}

// The ESP32's eFuse words that hold the SPI pad configuration (ESP32
// Technical Reference Manual, eFuse Controller, EFUSE_BLK0_RDATA3 and
// EFUSE_BLK0_RDATA5): CLK in word 5 bits 0-4, Q 5-9, D 10-14, CS0 15-19,
// and HD in word 3 bits 4-8.
const (
	EfuseWord3 = 0x3FF5A00C
	EfuseWord5 = 0x3FF5A014
)

// SPIPins is where a unit's SPI flash is wired: GPIO numbers.
type SPIPins struct{ CLK, Q, D, HD, CS0 uint32 }

// Packed returns the pins as SPI_ATTACH and the ROM's spi_flash_attach
// take them, the form ets_efuse_get_spiconfig returns (esp_rom_efuse.h):
// CLK | Q<<6 | D<<12 | CS0<<18 | HD<<24. All zero means the default pins.
func (p SPIPins) Packed() uint32 {
	return p.CLK | p.Q<<6 | p.D<<12 | p.CS0<<18 | p.HD<<24
}

// EfuseWords returns the eFuse words 3 and 5 that hold p.
func (p SPIPins) EfuseWords() (w3, w5 uint32) {
	return (p.HD & 0x1F) << 4, p.CLK&0x1F | (p.Q&0x1F)<<5 | (p.D&0x1F)<<10 | (p.CS0&0x1F)<<15
}

// PinsFromEfuse decodes the eFuse words 3 and 5.
func PinsFromEfuse(w3, w5 uint32) SPIPins {
	return SPIPins{CLK: w5 & 0x1F, Q: w5 >> 5 & 0x1F, D: w5 >> 10 & 0x1F, CS0: w5 >> 15 & 0x1F, HD: w3 >> 4 & 0x1F}
}

// SPIAttachArg reads the SPI pad configuration from eFuse and returns the
// SPI_ATTACH argument that reaches the flash: 0 for the default pins, the
// packed pins otherwise (what the flasher stub does at start with
// ets_efuse_get_spiconfig, esptool's flasher_stub/stub_flasher.c).
func (c *Client) SPIAttachArg(ctx context.Context) (uint32, error) {
	if err := c.needChip(OpSPIAttach); err != nil {
		return 0, err
	}
	if c.chip.Magic != ESP32.Magic {
		return 0, nil
	}
	w3, err := c.ReadReg(ctx, EfuseWord3)
	if err != nil {
		return 0, fmt.Errorf("esprom: read the SPI pad eFuse word 3: %w", err)
	}
	w5, err := c.ReadReg(ctx, EfuseWord5)
	if err != nil {
		return 0, fmt.Errorf("esprom: read the SPI pad eFuse word 5: %w", err)
	}
	return PinsFromEfuse(w3, w5).Packed(), nil
}

// AttachFlash readies the SPI flash as esptool does before writing:
// SPI_ATTACH with the pads the eFuse names (ESP32), RDID for the flash's
// size, and SPI_SET_PARAMS with that size, since the ESP32 ROM otherwise
// assumes 2 MiB. It returns the size detected (0 when the flash gave no
// usable ID, in which case the ROM keeps its own). On the ESP8266 ROM it
// only reads the ID.
func (c *Client) AttachFlash(ctx context.Context) (uint32, error) {
	if err := c.needChip(OpSPIAttach); err != nil {
		return 0, err
	}
	if c.chip.Attach {
		arg, err := c.SPIAttachArg(ctx)
		if err != nil {
			return 0, err
		}
		if arg != 0 {
			c.logf("SPI flash on non-default pins (eFuse): SPI_ATTACH 0x%08X", arg)
		}
		d := binary.LittleEndian.AppendUint32(nil, arg)
		if !c.stub { // the ROM takes a second word, "is legacy"; the stub only the first
			d = binary.LittleEndian.AppendUint32(d, 0)
		}
		if _, err := c.command(ctx, OpSPIAttach, 0, d, 0, 0, 0); err != nil {
			return 0, err
		}
	}
	id, err := c.FlashID(ctx)
	if err != nil {
		return 0, err
	}
	size := FlashSizeFromID(id)
	c.logf("flash ID 0x%06X: %d KiB", id, size>>10)
	if size == 0 || !c.chip.Attach {
		return size, nil
	}
	return size, c.SetFlashSize(ctx, size)
}
