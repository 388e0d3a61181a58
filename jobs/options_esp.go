package jobs

// espOptions is what the ESP ROM driver (driver_esp.go) takes.
var espOptions = DriverOptions{
	Protocol: "esprom",
	Options: []Option{
		{Name: "entry", Type: TypeChoice, Choices: []string{"gpio", "classic", "unix-tight"}, Default: "gpio",
			Doc: "how the unit enters its ROM: the bench's GPIO lines, or the adapter's DTR/RTS as esptool's classic or unix-tight reset"},
		{Name: "flash_size", Type: TypeInteger, Min: 256 << 10, Max: 16 << 20, Default: "the recipe's flash size, else 4 MiB",
			Doc: "the SPI flash's size in bytes: how far erase all and reads may go"},
		// The ESP32's UART runs up to 5 Mbit/s (ESP32 Technical Reference
		// Manual, UART Controller: "baud rates up to 5 MBaud").
		{Name: "flash_baud", Type: TypeInteger, Min: 9600, Max: 5000000, Default: "the serial baud",
			Doc: "the baud rate to switch to for the transfer (CHANGE_BAUDRATE; the ESP8266 ROM keeps the serial baud)"},
		{Name: "compress", Type: TypeBoolean, Default: "true", Doc: "write with FLASH_DEFL_* (zlib) where the ROM has it"},
		{Name: "delta", Type: TypeBoolean, Default: "true", Doc: "skip chunks whose MD5 on the unit already matches"},
		{Name: "delta_chunk", Type: TypeInteger, Min: 4096, Max: 16 << 20, Multiple: 4096, Default: "65536",
			Doc: "the chunk size the delta write compares, a multiple of the 4 KiB sector"},
	},
}
