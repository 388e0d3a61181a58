package esprom

import (
	"context"
	"fmt"
	"slices"
)

// FallbackRates are the rates a host steps down through when a faster link
// fails, fastest first: the standard rates USB-serial adapters take. Not
// every adapter that accepts 921600 carries it (esptool issue #435: a
// CH341 fails at 921600 and works at 460800), so a failed link is tried
// again one step slower, not given up.
var FallbackRates = []int{921600, 460800, 230400}

// RateLadder returns the rates to try, fastest first: want, then each
// fallback rate below it, none at or below base (the rate the link already
// runs at, the last resort).
func RateLadder(want, base int) []int {
	var out []int
	if want > base {
		out = append(out, want)
	}
	for _, r := range FallbackRates {
		if r < want && r > base && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// CheckLink reads the chip-detect word twice at the link's current rate
// and checks it against the chip identified: after CHANGE_BAUDRATE it
// proves that both directions carry whole packets at the new rate. A link
// that garbles fails with a timeout or a protocol error.
func (c *Client) CheckLink(ctx context.Context) error {
	if err := c.needChip(OpReadReg); err != nil {
		return err
	}
	for range 2 {
		v, err := c.ReadReg(ctx, ChipDetectReg)
		if err != nil {
			return err
		}
		if v != c.chip.Magic {
			return &ProtocolError{Op: OpReadReg, Msg: fmt.Sprintf("the chip-detect word reads 0x%08X at %d baud, it read 0x%08X at connect", v, c.baud, c.chip.Magic)}
		}
	}
	return nil
}

// Baud returns the link's current rate.
func (c *Client) Baud() int { return c.baud }
