package gpio

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
	"periph.io/x/devices/v3/mcp23xxx"
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

// Register addresses with IOCON.BANK = 0, the power-on default.
var mcpRegs = map[string]struct {
	iodir, olat [2]byte // by port: A (or the only one), B
	variant     mcp23xxx.Variant
}{
	"mcp23017": {[2]byte{0x00, 0x01}, [2]byte{0x14, 0x15}, mcp23xxx.MCP23017},
	"mcp23008": {[2]byte{0x00, 0x00}, [2]byte{0x0A, 0x0A}, mcp23xxx.MCP23008},
}

// MCP opens the pins of MCP23017 and MCP23008 expanders on one I2C bus
// through periph.io's mcp23xxx driver. Each chip is set up once, on the
// first open of one of its pins, and every access to a chip is serialised
// (the driver caches its registers without a lock).
//
// A pin switched from input to output starts at the level it is driven to:
// MCP first writes the level to the output latch (OLAT), then makes the pin
// an output (IODIR), so a relay never sees the latch's stale level.
type MCP struct {
	// Bus is the I2C bus; if nil, BusName is opened through periph.io's
	// i2creg after the host drivers are initialised.
	Bus     i2c.Bus
	BusName string // "1" for /dev/i2c-1; "" is the first bus found

	mu     sync.Mutex
	closer io.Closer
	chips  map[string]*mcpChip // by chip@addr
}

type mcpChip struct {
	mu   sync.Mutex
	name string
	dev  *mcp23xxx.Dev
	raw  *i2c.Dev
	olat [2]byte // what the latches hold, kept in step with every write
	regs [2]byte // OLAT register per port
}

// Register makes r open expander pin names through m.
func (m *MCP) Register(r *Registry) {
	r.Register(MCP23017Prefix, "MCP23017 I2C expander", m.Open)
	r.Register(MCP23008Prefix, "MCP23008 I2C expander", m.Open)
}

func (m *MCP) bus() (i2c.Bus, error) {
	if m.Bus != nil {
		return m.Bus, nil
	}
	if err := hostInit(); err != nil {
		return nil, fmt.Errorf("initialise the host's drivers: %w", err)
	}
	b, err := i2creg.Open(m.BusName)
	if err != nil {
		return nil, fmt.Errorf("open I2C bus %q: %w (enable I2C with raspi-config, and check i2c_bus in the bench file)", m.BusName, err)
	}
	m.Bus, m.closer = b, b
	return b, nil
}

func (m *MCP) chip(p MCPPin) (*mcpChip, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := fmt.Sprintf("%s@%#x", p.Chip, p.Addr)
	if c, ok := m.chips[key]; ok {
		return c, nil
	}
	bus, err := m.bus()
	if err != nil {
		return nil, err
	}
	regs := mcpRegs[p.Chip]
	dev, err := mcp23xxx.NewI2C(bus, regs.variant, p.Addr)
	if err != nil {
		return nil, fmt.Errorf("no %s answers at %#x on I2C bus %s: %w (check its wiring, supply and A2..A0 address jumpers; i2cdetect -y 1 lists what answers)",
			strings.ToUpper(p.Chip), p.Addr, bus, err)
	}
	c := &mcpChip{name: key, dev: dev, raw: &i2c.Dev{Bus: bus, Addr: p.Addr}, regs: regs.olat}
	for i := range len(dev.Pins) {
		var v [1]byte
		if err := c.raw.Tx([]byte{regs.olat[i]}, v[:]); err != nil {
			return nil, fmt.Errorf("%s: read OLAT: %w", key, err)
		}
		c.olat[i] = v[0]
	}
	if m.chips == nil {
		m.chips = map[string]*mcpChip{}
	}
	m.chips[key] = c
	return c, nil
}

// Open opens an expander pin by name, e.g. "mcp23017@0x20:PA3". It sets
// the chip up if this is its first pin; it does not drive the pin.
func (m *MCP) Open(name string) (pgpio.PinIO, error) {
	p, err := ParseMCPName(name)
	if err != nil {
		return nil, err
	}
	c, err := m.chip(p)
	if err != nil {
		return nil, err
	}
	port := 0
	if p.Port == 'B' {
		port = 1
	}
	return &mcpPin{name: p.String(), chip: c, port: port, bit: p.Bit, pin: c.dev.Pins[port][p.Bit]}, nil
}

// Close closes the bus if MCP opened it.
func (m *MCP) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.chips {
		c.dev.Close()
	}
	m.chips = nil
	if m.closer != nil {
		err := m.closer.Close()
		m.closer, m.Bus = nil, nil
		return err
	}
	return nil
}

// mcpPin is one expander pin; it implements gpio.PinIO.
type mcpPin struct {
	name      string
	chip      *mcpChip
	port, bit int
	pin       mcp23xxx.Pin
}

var _ pgpio.PinIO = (*mcpPin)(nil)

func (p *mcpPin) String() string   { return p.name }
func (p *mcpPin) Name() string     { return p.name }
func (p *mcpPin) Number() int      { return p.port*8 + p.bit }
func (p *mcpPin) Function() string { return string(p.Func()) }

// Halt does nothing: what is safe for a line depends on what it switches,
// which Line.Halt knows; releasing the pin to an input would leave a relay
// to its board's pull resistors.
func (p *mcpPin) Halt() error { return nil }

func (p *mcpPin) Func() pin.Func {
	p.chip.mu.Lock()
	defer p.chip.mu.Unlock()
	return p.fn()
}

// fn returns the pin's function from the driver's cached IODIR.
func (p *mcpPin) fn() pin.Func {
	if f, ok := p.pin.(pin.PinFunc); ok {
		return f.Func()
	}
	return pin.FuncNone
}

func (p *mcpPin) In(pull pgpio.Pull, edge pgpio.Edge) error {
	p.chip.mu.Lock()
	defer p.chip.mu.Unlock()
	return p.pin.In(pull, edge)
}

func (p *mcpPin) Read() pgpio.Level {
	p.chip.mu.Lock()
	defer p.chip.mu.Unlock()
	return p.pin.Read()
}

func (p *mcpPin) WaitForEdge(timeout time.Duration) bool { return false }
func (p *mcpPin) Pull() pgpio.Pull {
	p.chip.mu.Lock()
	defer p.chip.mu.Unlock()
	return p.pin.Pull()
}
func (p *mcpPin) DefaultPull() pgpio.Pull { return pgpio.Float }

// Out drives the pin. If it was an input, the latch gets the level before
// the pin becomes an output.
func (p *mcpPin) Out(l pgpio.Level) error {
	c := p.chip
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.olat[p.port] &^ (1 << p.bit)
	if l {
		v |= 1 << p.bit
	}
	if p.fn() != pgpio.OUT {
		if err := c.raw.Tx([]byte{c.regs[p.port], v}, nil); err != nil {
			return fmt.Errorf("%s: write OLAT: %w", p.name, err)
		}
		c.olat[p.port] = v
	}
	if err := p.pin.Out(l); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	c.olat[p.port] = v
	return nil
}

func (p *mcpPin) PWM(pgpio.Duty, physic.Frequency) error {
	return fmt.Errorf("%s: an MCP23xxx pin has no PWM", p.name)
}
