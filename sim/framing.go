package sim

import "fmt"

// Parity is the parity bit of a UART frame.
type Parity byte

// Parities, as termios (PARENB, PARODD, CMSPAR) and go.bug.st/serial name
// them.
const (
	ParityNone  Parity = iota
	ParityEven         // the parity bit makes the count of ones even
	ParityOdd          // ... odd
	ParityMark         // always 1
	ParitySpace        // always 0
)

func (p Parity) String() string {
	return [...]string{"N", "E", "O", "M", "S"}[p]
}

// ParseParity reads "none", "even", "odd", "mark" or "space" ("" is none).
func ParseParity(s string) (Parity, error) {
	switch s {
	case "", "none":
		return ParityNone, nil
	case "even":
		return ParityEven, nil
	case "odd":
		return ParityOdd, nil
	case "mark":
		return ParityMark, nil
	case "space":
		return ParitySpace, nil
	}
	return ParityNone, fmt.Errorf("sim: parity %q: want none, even, odd, mark or space", s)
}

// Framing is how a UART frames each byte on the wire: a start bit, eight
// data bits least significant first, the parity bit if any, and the stop
// bits. Data bits are always eight: a pseudo-terminal forces CS8 (Linux
// drivers/tty/pty.c, pty_set_termios), and every protocol here uses eight.
type Framing struct {
	Parity   Parity
	StopBits int // 1 or 2; 0 means 1
}

// The two framings the bench's units use: 8N1 for consoles, ESP and AVR
// ROMs, 8E1 for the STM32 system bootloader (AN3155 §2: "8 data bits, even
// parity, 1 stop bit").
var (
	Framing8N1 = Framing{}
	Framing8E1 = Framing{Parity: ParityEven}
)

func (f Framing) stop() int {
	if f.StopBits == 2 {
		return 2
	}
	return 1
}

// Bits returns the bit times one frame takes: 10 for 8N1, 11 for 8E1.
func (f Framing) Bits() int {
	n := 1 + 8 + f.stop()
	if f.Parity != ParityNone {
		n++
	}
	return n
}

// String returns the usual shorthand: "8E1".
func (f Framing) String() string { return fmt.Sprintf("8%v%d", f.Parity, f.stop()) }

// ParityBit returns the parity bit framing f sends with c.
func (f Framing) ParityBit(c byte) byte {
	ones := byte(0)
	for i := range 8 {
		ones ^= c >> i & 1
	}
	switch f.Parity {
	case ParityEven:
		return ones
	case ParityOdd:
		return ones ^ 1
	case ParityMark:
		return 1
	}
	return 0
}

// HostLine is what the unit's end of a link can see of how the host set
// its port up.
type HostLine struct {
	Framing Framing
	// Check is set when the host's driver checks the parity and stop bit of
	// what it receives (termios INPCK): a byte received with an error then
	// reads as 0x00, or is dropped when Ignore (IGNPAR) is set too (Linux
	// drivers/tty/n_tty.c, n_tty_receive_parity_error). Without Check the
	// byte reads as the UART sampled it.
	Check  bool
	Ignore bool
}

// HostFramer is implemented by transports that can tell how the host framed
// its port. ok is false when the host declared nothing (an in-memory pipe
// whose host never set a parity): the line then does not reframe.
type HostFramer interface {
	HostLine() (h HostLine, ok bool, err error)
}

// rxByte is a byte as a receiving UART sampled it, and whether it saw a
// parity or framing error.
type rxByte struct {
	b   byte
	bad bool
}

// reframe returns what a UART expecting framing to samples when a UART with
// framing from sends b back to back, the line idle (high) before and after.
// When the two framings agree every byte passes unharmed. When they do not,
// the receiver takes whatever bit follows the data as the parity bit and
// the next as the stop bit, so the sender's stop bit or the next byte's
// start bit land where it does not expect them: parity errors, framing
// errors, and bytes lost when a start bit was eaten as a stop bit (RM0008
// §27.3.3, "Character reception": a start bit is a falling edge after the
// line was high; framing error when the stop bit reads 0).
//
// An 8N1 host sending 7F alone to an 8E1 unit: 7F has seven ones, so its
// even parity bit is 1, which is what the host's stop bit reads as: the
// byte arrives clean. So do 79 and 1F. GET's 00 FF does not: 00 needs a 0
// parity bit, and FF's start bit is taken as 00's stop bit.
func reframe(b []byte, from, to Framing) []rxByte {
	bits := make([]byte, 0, len(b)*from.Bits()+2*to.Bits())
	for _, c := range b {
		bits = append(bits, 0)
		for i := range 8 {
			bits = append(bits, c>>i&1)
		}
		if from.Parity != ParityNone {
			bits = append(bits, from.ParityBit(c))
		}
		for range from.stop() {
			bits = append(bits, 1)
		}
	}
	for range 2 * to.Bits() {
		bits = append(bits, 1) // idle
	}
	out := make([]rxByte, 0, len(b))
	prev := byte(1)
	for i := 0; i < len(bits); {
		if !(bits[i] == 0 && prev == 1) {
			prev = bits[i]
			i++
			continue
		}
		// A start bit at i.
		var c byte
		for k := range 8 {
			c |= bits[i+1+k] << k
		}
		j := i + 9
		bad := false
		if to.Parity != ParityNone {
			bad = bits[j] != to.ParityBit(c)
			j++
		}
		// UARTs check the first stop bit only.
		if bits[j] == 0 {
			bad = true
		}
		out = append(out, rxByte{c, bad})
		prev = bits[j]
		i = j + 1
	}
	return out
}
