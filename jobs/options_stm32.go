package jobs

// stm32Options is what the STM32 driver (driver_stm32.go) takes.
var stm32Options = DriverOptions{
	Protocol: "stm32",
	Options: []Option{
		{Name: "readout_unprotect", Type: TypeBoolean, Default: "false",
			Doc: "when the part is read-protected, send Readout Unprotect (AN3155, the Readout Unprotect command), which mass-erases the flash, and connect again"},
	},
}
