// Package sim is the core of the virtual bench: simulated units whose
// firmware models speak the real bootloader protocols byte for byte.
//
// A Device is one unit: a Model (the firmware: a ROM bootloader and an
// application) behind a Line, with three inputs a bench drives: power, the
// boot strap and reset. At each power-on or reset release the Device starts
// the Model with the strap level it sampled; powering off or holding reset
// ends the run. Persistent state lives in the Model, typically in a Flash,
// which behaves like NOR flash: erased bytes read 0xFF and programming can
// only clear bits.
//
// The Line paces bytes at the line rate in both directions (10 or 11 bit
// times a byte), delays each answer by a turnaround latency (1 ms by default;
// FTDITurnaround models an FTDI adapter at its default latency timer),
// garbles bytes when the host's rate does not match the unit's, and has a
// Fast mode for unit tests. Its transport is a PTY, a Linux pseudo-terminal
// whose other side the station or a third-party tool opens like any serial
// port, or a Pipe, an in-memory link for tests under testing/synctest.
//
// The protocol models live in sub-packages (sim/stm32sim, ...); the bench
// that wires units to simulated GPIO lines lives in sim/simbench.
package sim
