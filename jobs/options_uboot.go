package jobs

// ubootOptions is what the U-Boot driver (driver_uboot.go) takes.
var ubootOptions = DriverOptions{
	Protocol: "uboot",
	Options: []Option{
		{Name: "storage", Type: TypeChoice, Choices: []string{"mmc", "sf"}, Default: "mmc",
			Doc: "where images go: the MMC/SD card (mmc write) or SPI NOR flash (sf write)"},
		{Name: "mmcdev", Type: TypeInteger, Min: 0, Max: 15, Default: "0", Doc: "the MMC device number (mmc dev N)"},
		{Name: "loadaddr", Type: TypeAddress, Default: "U-Boot's $loadaddr",
			Doc: "the RAM address loady receives into before an image is written"},
	},
}
