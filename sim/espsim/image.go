package espsim

import (
	"encoding/binary"
	"fmt"

	"github.com/unbrick/unbrick/sim"
)

// ImageMagic is the first byte of an ESP application image.
const ImageMagic = 0xE9

// DescOffset is where an application image carries its sim.AppDescriptor:
// inside the first segment, after the image header (8 bytes, plus the
// ESP32's 16-byte extended header) and the segment header (8 bytes).
const DescOffset = 0x20

// AppImage returns a valid application image of size bytes for the named
// chip, to be written at BootOffset: an ESP image header (magic 0xE9, one
// segment, DIO mode, 4 MB at 40 MHz, the entry point at the start of
// IRAM), the ESP32's extended header, a segment header loading the rest of
// the image into IRAM, the sim.AppDescriptor at DescOffset, then bytes
// derived from the version.
func AppImage(chip, version, target string, size int) ([]byte, error) {
	v, err := lookup(chip)
	if err != nil {
		return nil, err
	}
	if size < DescOffset+sim.DescriptorSize || size%4 != 0 {
		return nil, fmt.Errorf("espsim: application of %d bytes: must be a multiple of 4 and at least %d", size, DescOffset+sim.DescriptorSize)
	}
	hdr := []byte{ImageMagic, 1, 0x02, 0x20}
	if v.chip.Name == "ESP8266" {
		hdr[3] = 0x40 // 4 MB, 40 MHz in the ESP8266's encoding
	}
	hdr = binary.LittleEndian.AppendUint32(hdr, v.iram[0])
	if v.chip.Name == "ESP32" {
		// Extended header: WP pin 0xEE (unused), drive settings, chip id 0
		// (ESP32), minimum revision 0, reserved, no hash appended.
		ext := make([]byte, 16)
		ext[0] = 0xEE
		hdr = append(hdr, ext...)
	}
	seg := binary.LittleEndian.AppendUint32(nil, v.iram[0])
	seg = binary.LittleEndian.AppendUint32(seg, uint32(size-len(hdr)-8))
	return sim.BuildApp(append(hdr, seg...), DescOffset, size, version, target)
}
