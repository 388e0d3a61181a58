package jobs

// avrOptions is what the optiboot driver (driver_avr.go) takes: nothing
// besides the options every recipe may set.
var avrOptions = DriverOptions{Protocol: "avr"}
