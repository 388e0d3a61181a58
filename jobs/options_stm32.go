package jobs

// stm32Options is what the STM32 driver (driver_stm32.go) takes.
var stm32Options = DriverOptions{
	Protocol: "stm32",
	Options: []Option{
		{Name: "readout_unprotect", Type: TypeBoolean, Default: "false",
			Doc: "when the part is read-protected, send Readout Unprotect (AN3155, the Readout Unprotect command), which mass-erases the flash, and connect again"},
		{Name: "skip_same", Type: TypeBoolean, Default: "false",
			Doc: "the unit may already hold the images: where the bootloader offers GET_CHECKSUM (AN3155), an erase step leaves alone each page or sector whose CRC already equals the plan's images over 0xFF, and the write step sends nothing there (the verify step still checks every byte)"},
	},
}
