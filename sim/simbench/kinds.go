package simbench

import (
	"fmt"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
)

// Kinds returns every kind of part the virtual bench can build.
func Kinds() []*Kind {
	uboot, esp32, esp8266 := UBoot, ESP32, ESP8266
	return []*Kind{STM32F103(), STM32F407(), ATmega328P(), &esp32, &esp8266, &uboot}
}

// boards names the board each kind of demo unit is.
var boards = map[string]string{
	"stm32f103":  "sensor-b",
	"stm32f407":  "gateway-c",
	"atmega328p": "uno-r3",
	"esp32":      "meter-e",
	"esp8266":    "plug-d",
	"uboot":      "hmi-a",
}

// DemoBoard returns the board a demo unit of the kind is: the target its
// application images are built for.
func DemoBoard(kind string) string {
	if b, ok := boards[kind]; ok {
		return b
	}
	return "demo-" + kind
}

// flashImage returns the contents a unit of state st arrives with, given a
// good image of its old version: the image, a corrupted copy (a failed
// upgrade), or nothing.
func flashImage(st State, good []byte) ([]byte, error) {
	switch st {
	case Good, "":
		return good, nil
	case Bricked, AppOnly:
		bad := append([]byte(nil), good...)
		// An upgrade cut short: the second half never made it.
		for i := len(bad) / 2; i < len(bad); i++ {
			bad[i] = 0xFF
		}
		return bad, nil
	case Erased:
		return nil, nil
	}
	return nil, fmt.Errorf("unknown unit state %q (want good, bricked, app-bad or erased)", st)
}

func oldVersion(s Spec) string {
	if s.Version != "" {
		return s.Version
	}
	return "1.0.0"
}

// ATmega328P is an Arduino-class board with optiboot.
func ATmega328P() *Kind {
	const part = "atmega328p"
	k := &Kind{
		Name: part, Protocol: "avr", Chip: 0x1E950F,
		ResetActive: pgpio.Low,
		Line:        sim.LineConfig{Baud: 115200},
		ConsoleBaud: 115200,
	}
	k.Image = func(version, board string) ([]byte, uint32, error) {
		img, err := avrsim.AppImage(part, version, board, 8<<10)
		return img, 0, err
	}
	k.New = func(s Spec) (sim.Model, error) {
		good, _, err := k.Image(oldVersion(s), s.Board)
		if err != nil {
			return nil, err
		}
		img, err := flashImage(s.State, good)
		if err != nil {
			return nil, err
		}
		o := avrsim.Options{Board: s.Board, ID: k.Label(s), Image: img}
		if s.Options["stay"] == "true" {
			o.Window = -1 // optiboot waits for ever: for a person driving avrdude by hand
		}
		return avrsim.New(part, o)
	}
	k.Label = func(s Spec) string { return fmt.Sprintf("AVR-%06d", s.Seed) }
	return k
}
