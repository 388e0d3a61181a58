package simbench

import (
	"fmt"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/stm32sim"
)

// STM32F103 is a Cortex-M3 sensor board recovered through the USART system
// bootloader (AN3155), BOOT0 on the slot's strap line and NRST on its reset.
func STM32F103() *Kind { return stm32Kind("stm32f103", 0x410, 24<<10) }

// STM32F407 is a Cortex-M4 controller board, the same way.
func STM32F407() *Kind { return stm32Kind("stm32f407", 0x413, 48<<10) }

// flashBase is where STM32 flash starts (and the application with it).
const flashBase = 0x08000000

func stm32Kind(part string, pid uint32, size int) *Kind {
	line := stm32sim.LineConfig()
	line.Baud = 0 // the ROM autobauds on 0x7F: it follows the host
	k := &Kind{
		Name: part, Protocol: "stm32", Chip: pid,
		Strap: pgpio.High, HasStrap: true,
		ResetActive: pgpio.Low,
		Line:        line,
		ConsoleBaud: 115200,
	}
	k.Image = func(version, board string) ([]byte, uint32, error) {
		img, err := stm32sim.AppImage(part, version, board, size)
		return img, flashBase, err
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
		m, err := stm32sim.New(part, stm32sim.Options{Board: s.Board, Seed: s.Seed, Image: img})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return m, nil
	}
	return k
}
