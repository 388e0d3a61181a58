package jobs

// avrOptions is what the AVR driver (driver_avr.go) takes.
var avrOptions = DriverOptions{
	Protocol: "avr",
	Options: []Option{
		{Name: "bootloader", Type: TypeChoice, Choices: []string{"optiboot", "wiring", "stk500v2"}, Default: "optiboot",
			Doc: "the bootloader the part runs: optiboot (STK500v1, avrdude -c arduino) or the Arduino Mega 2560's STK500v2 bootloader (wiring; avrdude -c wiring)"},
	},
}
