package jobs

import "github.com/unbrick/unbrick/bootloader/uboot"

// ubootOptions is what the U-Boot driver (driver_uboot.go) takes.
var ubootOptions = DriverOptions{
	Protocol: "uboot",
	Options: []Option{
		{Name: "storage", Type: TypeChoice, Choices: uboot.Kinds, Default: "mmc",
			Doc: "where images go, named as U-Boot names it: mmc, virtio, nvme, scsi, usb (block devices), sf (SPI NOR), nor (CFI parallel NOR) or ram (loaded to RAM, checked with crc32 and booted; storage untouched)"},
		{Name: "dev", Type: TypeInteger, Min: 0, Max: 15, Default: "0", Doc: "the block device number (<if> dev N)"},
		{Name: "mmcdev", Type: TypeInteger, Min: 0, Max: 15, Default: "0", Doc: "the old name of dev"},
		{Name: "loadaddr", Type: TypeAddress, Default: "U-Boot's $loadaddr",
			Doc: "the RAM address loady receives into before an image is written"},
		{Name: "norbase", Type: TypeHex, Min: 0, Max: 0xFFFFFFFF, Default: "0", Doc: "where the CFI NOR flash is mapped (storage=nor)"},
		{Name: "norsector", Type: TypeHex, Min: 0, Max: 1 << 24, Default: "0x20000", Doc: "the CFI NOR flash's erase sector size, a power of two"},
		{Name: "ramboot", Type: TypeChoice, Choices: []string{"bootm", "go"}, Default: "bootm", Doc: "how storage=ram starts the image"},
		{Name: "prompt", Type: TypeText, Default: "=> ", Doc: "the board's CONFIG_SYS_PROMPT"},
		{Name: "stopstr", Type: TypeText, Default: "any key", Doc: "the key sequence of a keyed autoboot (CONFIG_AUTOBOOT_KEYED)"},
		{Name: "cbsize", Type: TypeInteger, Min: 64, Max: 4096, Default: "256", Doc: "the board's CONFIG_SYS_CBSIZE: the longest command line plus one"},
		{Name: "loady_baud", Type: TypeInteger, Min: 0, Max: 4000000, Default: "0",
			Doc: "the rate loady receives at (loady ADDR BAUD, cmd/load.c): U-Boot switches its UART for the transfer and back; a rate that fails falls back step by step (460800, 230400, 115200, the console's), resetting the unit when it is left at a rate the host cannot reach; 0 loads at the console rate"},
		{Name: "skip_same", Type: TypeBoolean, Default: "false",
			Doc: "the slot may already hold the image: compare U-Boot's crc32 of the region with the image's first and send nothing when they match (the verify step still checks it on the unit)"},
		{Name: "chunk", Type: TypeInteger, Min: 1, Max: 4096, Default: "32", Doc: "characters typed before their echo is checked (a polled UART drops what is typed too fast)"},
	},
}
