package simbench

import (
	"fmt"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/espsim"
)

// ESP32 is a metering board on an ESP32 module, recovered through the ROM's
// serial download mode (esptool's protocol): GPIO0 on the slot's strap line
// (low selects download mode) and EN on its reset line. Its serial number
// is its MAC, from eFuse. The ROM inflates compressed writes and hashes
// flash, so its recipes write with delta flashing and verify by MD5.
//
// ESP8266 is a smart plug on an ESP8266: the same, but its ROM has neither
// compression nor MD5 (every byte is written, and the ROM's read-back of
// each block vouches for it), and it prints its boot messages at 74880.
//
// Unit states: good (a valid image of the old version where it boots from),
// bricked (the image's second half erased by a cut-short upgrade), app-bad
// (one 4 KiB sector near the end of the image damaged: delta flashing
// rewrites only the chunk holding it), erased (nothing in flash: the ROM
// prints "invalid header: 0xffffffff").
var ESP32, ESP8266 = espKind("esp32", 0x00F01D83), espKind("esp8266", 0xFFF0C101)

// espImageSize is the demo application's size.
const espImageSize = 64 << 10

func espKind(chip string, magic uint32) Kind {
	// The ESP32 runs ESP-IDF's layout: the second-stage bootloader at the
	// boot offset (0x1000, never rewritten by a recovery), the application
	// in the factory partition at 0x10000. The ESP8266 boots its
	// application straight from 0.
	idf := chip == "esp32"
	image := func(version, board string) ([]byte, uint32, error) {
		off, err := espsim.BootOffset(chip)
		if err != nil {
			return nil, 0, err
		}
		if idf {
			off = espsim.AppOffset
		}
		img, err := espsim.AppImage(chip, version, board, espImageSize)
		return img, off, err
	}
	return Kind{
		Name: chip, Protocol: "esprom", Chip: magic,
		Strap: pgpio.Low, HasStrap: true,
		ResetActive: pgpio.Low,
		Line:        espsim.LineConfig(), // the ROM autobauds on SYNC: it follows the host
		ConsoleBaud: 115200,
		Image:       image,
		New: func(s Spec) (sim.Model, error) {
			good, _, err := image(oldVersion(s), s.Board)
			if err != nil {
				return nil, err
			}
			var img []byte
			if s.State == AppOnly {
				img = append([]byte(nil), good...)
				for i := len(img) - 8<<10; i < len(img)-4<<10; i++ {
					img[i] ^= 0x5A
				}
			} else if img, err = flashImage(s.State, good); err != nil {
				return nil, err
			}
			if !idf {
				m, err := espsim.New(chip, espsim.Options{Board: s.Board, Seed: s.Seed, Image: img})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", chip, err)
				}
				return m, nil
			}
			boot, err := espsim.BootloaderImage(chip)
			if err != nil {
				return nil, err
			}
			m, err := espsim.New(chip, espsim.Options{Board: s.Board, Seed: s.Seed, Image: boot})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", chip, err)
			}
			if img != nil {
				if err := m.Flash().Load(espsim.AppOffset, img); err != nil {
					return nil, err
				}
			}
			return m, nil
		},
	}
}
