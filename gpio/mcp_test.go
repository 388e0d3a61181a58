package gpio_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio"
)

// fakeMCP is an MCP23017 or MCP23008 register file on a fake I2C bus
// (IOCON.BANK = 0). It notes the latch level each pin had at the moment it
// became an output, which is what a relay on that pin sees first.
type fakeMCP struct {
	mu           sync.Mutex
	addr         uint16
	regs         []byte
	iodir, olat  [2]byte
	ports        int
	becameOutput []output
}

type output struct {
	port, bit int
	level     bool
}

func newFakeMCP23017(addr uint16) *fakeMCP {
	f := &fakeMCP{addr: addr, regs: make([]byte, 0x16), iodir: [2]byte{0x00, 0x01}, olat: [2]byte{0x14, 0x15}, ports: 2}
	f.regs[0x00], f.regs[0x01] = 0xFF, 0xFF // every pin an input at power-on
	return f
}

func newFakeMCP23008(addr uint16) *fakeMCP {
	f := &fakeMCP{addr: addr, regs: make([]byte, 0x0B), iodir: [2]byte{0x00, 0x00}, olat: [2]byte{0x0A, 0x0A}, ports: 1}
	f.regs[0x00] = 0xFF
	return f
}

func (f *fakeMCP) String() string                  { return "fake-i2c" }
func (f *fakeMCP) SetSpeed(physic.Frequency) error { return nil }

func (f *fakeMCP) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addr != f.addr {
		return fmt.Errorf("no ACK from %#x", addr)
	}
	if len(w) == 0 || int(w[0]) >= len(f.regs) {
		return fmt.Errorf("bad register access % x", w)
	}
	reg := w[0]
	switch {
	case len(w) == 1 && len(r) == 1:
		r[0] = f.regs[reg]
	case len(w) == 2 && len(r) == 0:
		for p := range f.ports {
			if reg == f.iodir[p] {
				for bit := range 8 {
					was, now := f.regs[reg]>>bit&1, w[1]>>bit&1
					if was == 1 && now == 0 {
						f.becameOutput = append(f.becameOutput, output{p, bit, f.regs[f.olat[p]]>>bit&1 == 1})
					}
				}
			}
		}
		f.regs[reg] = w[1]
	default:
		return fmt.Errorf("unexpected transaction w=% x r=%d bytes", w, len(r))
	}
	return nil
}

func (f *fakeMCP) reg(r byte) byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.regs[r]
}

const mcpBench = `bench: expander
defaults:
  lines: {power: {active: high}, boot: {active: high}, reset: {active: low}}
slots:
  - slot: 1
    port: {path: /dev/a}
    lines: {power: "mcp23017@0x20:PA0", boot: "mcp23017@0x20:PB0", reset: "mcp23017@0x20:PB1"}
  - slot: 2
    port: {path: /dev/b}
    lines:
      power: {line: "mcp23017@0x20:PA1", active: low}
      boot: {line: "MCP23017@0x20:pb2", active: low}
      reset: {line: "mcp23017@0x20:PB3", active: high}
`

// pinOf returns port and bit of a canonical MCP23017 name.
func pinOf(t *testing.T, name string) (int, int) {
	p, err := gpio.ParseMCPName(name)
	if err != nil {
		t.Fatal(err)
	}
	port := 0
	if p.Port == 'B' {
		port = 1
	}
	return port, p.Bit
}

func TestMCP23017DrivenAsTheBenchSays(t *testing.T) {
	b, err := fixtures.Parse("expander.yaml", []byte(mcpBench), nil)
	if err != nil {
		t.Fatal(err)
	}
	chip := newFakeMCP23017(0x20)
	rec := &i2ctest.Record{Bus: chip}
	var reg gpio.Registry
	mcp := &gpio.MCP{Bus: rec}
	mcp.Register(&reg)
	defer mcp.Close()

	type line struct {
		fl fixtures.Line
		l  *gpio.Line
	}
	var lines []line
	var all []*gpio.Line
	for _, s := range b.Slots {
		for _, fl := range s.Lines {
			pin, err := reg.Open(fl.Name)
			if err != nil {
				t.Fatalf("Open(%s) = %v", fl.Name, err)
			}
			l := gpio.NewLine(fl.Name, fl.Role, pgpio.Level(fl.ActiveHigh), pin)
			lines = append(lines, line{fl, l})
			all = append(all, l)
		}
	}
	if chip.reg(0x00) != 0xFF || chip.reg(0x01) != 0xFF {
		t.Fatalf("IODIR = %#x %#x after opening, want every pin still an input (opening drives nothing)", chip.reg(0x00), chip.reg(0x01))
	}

	// Safe state: every line at its deasserted level.
	if err := gpio.HaltAll(all); err != nil {
		t.Fatal(err)
	}
	iodir := [2]byte{0xFF, 0xFF}
	for _, l := range lines {
		port, bit := pinOf(t, l.fl.Name)
		iodir[port] &^= 1 << bit
		olat := chip.reg([]byte{0x14, 0x15}[port])
		if got, want := olat>>bit&1 == 1, !l.fl.ActiveHigh; got != want {
			t.Errorf("%s (%s, active high %v): OLAT bit = %v after HaltAll, want %v", l.fl.Name, l.fl.Role, l.fl.ActiveHigh, got, want)
		}
	}
	if got := [2]byte{chip.reg(0x00), chip.reg(0x01)}; got != iodir {
		t.Errorf("IODIR = %#x, want %#x: outputs for the bench's lines only", got, iodir)
	}
	// No pin ever became an output at the wrong level, even for a moment.
	chip.mu.Lock()
	for _, o := range chip.becameOutput {
		for _, l := range lines {
			if port, bit := pinOf(t, l.fl.Name); port == o.port && bit == o.bit && o.level != !l.fl.ActiveHigh {
				t.Errorf("%s became an output with its latch at %v, want %v (safe) before IODIR changes", l.fl.Name, o.level, !l.fl.ActiveHigh)
			}
		}
	}
	if len(chip.becameOutput) != len(lines) {
		t.Errorf("%d pins became outputs, want %d", len(chip.becameOutput), len(lines))
	}
	chip.mu.Unlock()

	// Only IODIR and OLAT are written; OLAT comes before IODIR.
	rec.Lock()
	for i, op := range rec.Ops {
		if len(op.W) == 2 && op.W[0] != 0x00 && op.W[0] != 0x01 && op.W[0] != 0x14 && op.W[0] != 0x15 {
			t.Errorf("op %d writes register %#x, want only IODIR and OLAT", i, op.W[0])
		}
	}
	rec.Ops = nil
	rec.Unlock()

	// Power slot 1 (active high) and slot 2 (active low) on.
	on := func(slot int) {
		t.Helper()
		l, _ := b.Slot(slot).Line(gpio.Power)
		for _, x := range lines {
			if x.fl == l {
				if err := x.l.Set(true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	on(1)
	on(2)
	if got := chip.reg(0x14); got&0b11 != 0b01 {
		t.Errorf("OLATA = %08b, want bit 0 high (slot 1 on, active high) and bit 1 low (slot 2 on, active low)", got)
	}
	rec.Lock()
	// After the safe state OLATA is 0b10 (PA1 is active low); slot 1 on
	// sets PA0, slot 2 on clears PA1.
	want := []i2ctest.IO{{Addr: 0x20, W: []byte{0x14, 0b11}}, {Addr: 0x20, W: []byte{0x14, 0b01}}}
	if fmt.Sprint(rec.Ops) != fmt.Sprint(want) {
		t.Errorf("power-ons wrote %v, want %v (one OLATA write each, pins already outputs)", rec.Ops, want)
	}
	rec.Unlock()
}

func TestMCPConcurrentPins(t *testing.T) {
	chip := newFakeMCP23017(0x27)
	mcp := &gpio.MCP{Bus: chip}
	defer mcp.Close()
	var wg sync.WaitGroup
	for port := range "AB" {
		for bit := range 8 {
			name := fmt.Sprintf("mcp23017@0x27:P%c%d", 'A'+port, bit)
			wg.Go(func() {
				p, err := mcp.Open(name)
				if err != nil {
					t.Errorf("Open(%s) = %v", name, err)
					return
				}
				for range 5 {
					if err := p.Out(pgpio.Low); err != nil {
						t.Error(err)
					}
					if err := p.Out(pgpio.High); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	if a, b := chip.reg(0x14), chip.reg(0x15); a != 0xFF || b != 0xFF {
		t.Errorf("OLAT = %#x %#x after every pin went high, want 0xff 0xff (no lost update)", a, b)
	}
	if a, b := chip.reg(0x00), chip.reg(0x01); a != 0 || b != 0 {
		t.Errorf("IODIR = %#x %#x, want 0 0", a, b)
	}
}

func TestMCP23008(t *testing.T) {
	chip := newFakeMCP23008(0x21)
	mcp := &gpio.MCP{Bus: chip}
	defer mcp.Close()
	var reg gpio.Registry
	mcp.Register(&reg)
	p, err := reg.Open("mcp23008@0x21:GP5")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "mcp23008@0x21:GP5" {
		t.Errorf("Name() = %q", p.Name())
	}
	l := gpio.NewLine(p.Name(), gpio.Reset, pgpio.Low, p)
	if err := l.Set(true); err != nil {
		t.Fatal(err)
	}
	if iodir, olat := chip.reg(0x00), chip.reg(0x0A); iodir != 0xFF&^(1<<5) || olat != 0 {
		t.Errorf("after asserting an active-low reset: IODIR %08b OLAT %08b, want 11011111 00000000", iodir, olat)
	}
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	if olat := chip.reg(0x0A); olat != 1<<5 {
		t.Errorf("after Halt: OLAT %08b, want 00100000", olat)
	}
}

func TestMCPErrors(t *testing.T) {
	chip := newFakeMCP23017(0x20)
	mcp := &gpio.MCP{Bus: chip}
	defer mcp.Close()
	var reg gpio.Registry
	mcp.Register(&reg)
	for _, c := range []struct{ name, want string }{
		{"mcp23017@0x22:PA0", `no MCP23017 answers at 0x22 on I2C bus fake-i2c`},
		{"mcp23017@0x20:PA8", "the bit must be 0..7"},
		{"mcp23008@0x20", `missing ":PIN"`},
	} {
		_, err := reg.Open(c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("Open(%s) = %v, want an error naming it and saying %q", c.name, err, c.want)
		}
	}
	p, err := reg.Open("mcp23017@0x20:PA0")
	if err != nil {
		t.Fatal(err)
	}
	chip.mu.Lock()
	chip.addr = 0x99 // the chip stops answering
	chip.mu.Unlock()
	if err := p.Out(pgpio.High); err == nil || !strings.Contains(err.Error(), "mcp23017@0x20:PA0") {
		t.Errorf("Out on a chip that stopped answering = %v, want an error naming the pin", err)
	}
}

func TestParseMCPName(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"mcp23017@0x20:PA3", "mcp23017@0x20:PA3", ""},
		{"MCP23017@0X27:pb7", "mcp23017@0x27:PB7", ""},
		{"mcp23017@32:PA0", "mcp23017@0x20:PA0", ""},
		{"mcp23008@0x21:GP0", "mcp23008@0x21:GP0", ""},
		{"mcp23008@0x21:PA0", "", "not GP0..GP7"},
		{"mcp23017@0x28:PA0", "", "outside 0x20..0x27"},
		{"mcp23017@zz:PA0", "", "not a number"},
		{"mcp23017@0x20:PA10", "", "the bit must be 0..7"},
		{"mcp23017@0x20:PC1", "", "not PA0..PA7"},
		{"mcp23016@0x20:PA1", "", "not an MCP23017 or MCP23008"},
	} {
		p, err := gpio.ParseMCPName(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseMCPName(%q) = %v, %v; want error %q", c.in, p, err, c.err)
			}
			continue
		}
		if err != nil || p.String() != c.want {
			t.Errorf("ParseMCPName(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
}

func FuzzParseMCPName(f *testing.F) {
	for _, s := range []string{"mcp23017@0x20:PA3", "mcp23008@0x27:GP7", "mcp23017@0x20:", "mcp23017@:PA1", "MCP23017@0X20:PB0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := gpio.ParseMCPName(s)
		if err != nil {
			return
		}
		// A parsed name round-trips through its canonical form.
		q, err := gpio.ParseMCPName(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseMCPName(%q) = %v; its name %q parses to %v, %v", s, p, p.String(), q, err)
		}
		if p.Addr < 0x20 || p.Addr > 0x27 || p.Bit < 0 || p.Bit > 7 {
			t.Fatalf("ParseMCPName(%q) = %+v out of range", s, p)
		}
	})
}
