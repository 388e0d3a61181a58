package gpio

import (
	"fmt"
	"strconv"
	"strings"
)

// MCPPin names one pin of an MCP23017 or MCP23008 I2C expander, written in a
// bench file as "mcp23017@0x20:PA3" (port A, bit 3, of the MCP23017 at I2C
// address 0x20) or "mcp23008@0x21:GP5". Datasheets:
// https://ww1.microchip.com/downloads/en/devicedoc/20001952c.pdf (MCP23017),
// https://ww1.microchip.com/downloads/en/DeviceDoc/21919e.pdf (MCP23008).
type MCPPin struct {
	Chip string // "mcp23017" or "mcp23008"
	Addr uint16 // 0x20..0x27
	Port byte   // 'A' or 'B' on an MCP23017, 0 on an MCP23008
	Bit  int    // 0..7
}

// The name prefixes of the expanders' pins.
const (
	MCP23017Prefix = "mcp23017@"
	MCP23008Prefix = "mcp23008@"
)

// IsMCPName reports whether name is meant as an expander pin (it may still be
// malformed; ParseMCPName says how).
func IsMCPName(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, MCP23017Prefix) || strings.HasPrefix(n, MCP23008Prefix)
}

// ParseMCPName parses an expander pin name. Case does not matter:
// "MCP23017@0x20:pa3" is "mcp23017@0x20:PA3".
func ParseMCPName(name string) (MCPPin, error) {
	bad := func(why string) (MCPPin, error) {
		return MCPPin{}, fmt.Errorf("expander pin %q: %s (write mcp23017@0x20:PA3, mcp23017@0x27:PB7 or mcp23008@0x20:GP0)", name, why)
	}
	n := strings.ToLower(strings.TrimSpace(name))
	var p MCPPin
	switch {
	case strings.HasPrefix(n, MCP23017Prefix):
		p.Chip = "mcp23017"
	case strings.HasPrefix(n, MCP23008Prefix):
		p.Chip = "mcp23008"
	default:
		return bad("not an MCP23017 or MCP23008 pin")
	}
	rest := n[len(p.Chip)+1:]
	addr, pin, ok := strings.Cut(rest, ":")
	if !ok {
		return bad("missing \":PIN\" after the address")
	}
	a, err := strconv.ParseUint(addr, 0, 16)
	if err != nil {
		return bad(fmt.Sprintf("address %q is not a number", addr))
	}
	if a < 0x20 || a > 0x27 {
		return bad(fmt.Sprintf("address %#x is outside 0x20..0x27, the range the chip's A2..A0 pins select", a))
	}
	p.Addr = uint16(a)
	var digits string
	switch p.Chip {
	case "mcp23017":
		if len(pin) < 3 || pin[0] != 'p' || (pin[1] != 'a' && pin[1] != 'b') {
			return bad(fmt.Sprintf("pin %q is not PA0..PA7 or PB0..PB7", pin))
		}
		p.Port = pin[1] - 'a' + 'A'
		digits = pin[2:]
	case "mcp23008":
		if !strings.HasPrefix(pin, "gp") {
			return bad(fmt.Sprintf("pin %q is not GP0..GP7", pin))
		}
		digits = pin[2:]
	}
	b, err := strconv.Atoi(digits)
	if err != nil || b < 0 || b > 7 || len(digits) != 1 {
		return bad(fmt.Sprintf("pin %q: the bit must be 0..7", pin))
	}
	p.Bit = b
	return p, nil
}

// String returns the pin's canonical name.
func (p MCPPin) String() string {
	if p.Port == 0 {
		return fmt.Sprintf("%s@%#x:GP%d", p.Chip, p.Addr, p.Bit)
	}
	return fmt.Sprintf("%s@%#x:P%c%d", p.Chip, p.Addr, p.Port, p.Bit)
}
