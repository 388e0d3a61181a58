package simbench

import (
	"fmt"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/ubootsim"
)

// UBoot is an embedded Linux board (an i.MX6ULL HMI) recovered through
// U-Boot's console: the station stops autoboot with a key, loads a slot
// bundle (kernel, device tree and root file system, see ubootsim.Bundle)
// into RAM with loady and writes it to slot a on the eMMC. There is no
// strap: a power cycle (or the reset line) and a key press are the way in.
// Its serial number is serial#, from the board's OTP.
//
// Unit states: good (both slots hold the old version), bricked (slot a's
// kernel is corrupt and no update is pending, so U-Boot's bootcount does
// not fall back: it boot-loops), app-bad (slot a's root file system is
// corrupt: the kernel panics and reboots), erased (both slots empty).
// Options: "stay": "true" sets bootdelay -1 (U-Boot waits at its prompt).
var UBoot = Kind{
	Name: "uboot", Protocol: "uboot", Chip: 0,
	ResetActive: pgpio.Low,
	Line:        sim.LineConfig{Baud: 115200},
	ConsoleBaud: 115200,
	New:         newUBoot,
	Image:       ubootImage,
}

// ubootImage is a healthy bundle for slot a and its eMMC offset.
func ubootImage(version, board string) ([]byte, uint32, error) {
	b, off, err := ubootsim.Bundle(version, board, ubootsim.BenchLayout, "a")
	return b, uint32(off), err
}

func newUBoot(s Spec) (sim.Model, error) {
	old := oldVersion(s)
	o := ubootsim.Options{
		Serial:    fmt.Sprintf("HMI-%06d", s.Seed),
		BootDelay: 2 * time.Second,
		Layout:    ubootsim.BenchLayout,
		A:         ubootsim.SlotImage{Version: old},
		B:         ubootsim.SlotImage{Version: old},
		Watchdog:  10 * time.Second,
	}
	switch s.State {
	case Good, "":
	case Bricked:
		o.A.Fault = ubootsim.BadKernelCRC
	case AppOnly:
		o.A.Fault = ubootsim.CorruptRootFS
	case Erased:
		o.A.Fault, o.B.Fault = ubootsim.Empty, ubootsim.Empty
	default:
		return nil, fmt.Errorf("unknown unit state %q (want good, bricked, app-bad or erased)", s.State)
	}
	if s.Options["stay"] == "true" {
		o.BootDelay = -1
	}
	board := s.Board
	if board == "" {
		board = DemoBoard("uboot")
	}
	m, err := ubootsim.New(board, o)
	if err != nil {
		return nil, fmt.Errorf("uboot: %w", err)
	}
	return m, nil
}
