package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/unbrick/unbrick/bootloader"
)

// Console reads a unit's console: the text its application or boot code
// prints on the serial port. Everything read is kept (for the record and for
// diagnosis), passed to a sink as it arrives, and searched by Expect.
type Console struct {
	conn *bootloader.Conn
	sink func([]byte)

	mu   sync.Mutex
	text []byte // everything read so far
	mark int    // where the next Expect starts searching
	base int    // where the current boot began (the last Mark)
}

// maxConsole bounds what one attempt keeps of a unit's console in memory; a
// unit printing a boot loop for minutes must not grow the station.
const maxConsole = 1 << 20

// NewConsole returns a console reading from p. sink, if not nil, receives
// every chunk read, in order, on the reading goroutine.
func NewConsole(p bootloader.Port, sink func([]byte)) *Console {
	return &Console{conn: bootloader.NewConn(p), sink: sink}
}

// Text returns everything read so far.
func (c *Console) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.text)
}

// Mark makes later Expect calls search only text read from now on, and
// remembers this point as the start of a boot.
func (c *Console) Mark() {
	c.mu.Lock()
	c.mark = len(c.text)
	c.base = c.mark
	c.mu.Unlock()
}

// rewind makes the next Expect search from the last Mark again.
func (c *Console) rewind() {
	c.mu.Lock()
	c.mark = c.base
	c.mu.Unlock()
}

// textSinceMark returns what was read since the last Mark.
func (c *Console) textSinceMark() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.text[c.base:])
}

func (c *Console) add(b []byte) {
	c.mu.Lock()
	if len(c.text)+len(b) > maxConsole {
		// Keep the tail: drop the oldest half, and move the mark with it.
		drop := len(c.text) / 2
		c.text = append(c.text[:0], c.text[drop:]...)
		c.mark = max(0, c.mark-drop)
		c.base = max(0, c.base-drop)
	}
	c.text = append(c.text, b...)
	c.mu.Unlock()
	if c.sink != nil {
		c.sink(b)
	}
}

// Send writes s to the unit.
func (c *Console) Send(s string) error {
	if err := c.conn.Write([]byte(s)); err != nil {
		return fmt.Errorf("send %q: %w", s, err)
	}
	return nil
}

// ExpectError says a console expectation was not met in time.
type ExpectError struct {
	Pattern string
	Within  time.Duration
	Tail    string // the last line or so the unit printed
}

func (e *ExpectError) Error() string {
	if e.Tail == "" {
		return fmt.Sprintf("the unit printed nothing within %v (expected %q)", e.Within, e.Pattern)
	}
	return fmt.Sprintf("expected %q within %v; the unit last printed %q", e.Pattern, e.Within, e.Tail)
}

// Expect reads until re matches the text since the mark, or within passes.
// It returns the submatches and moves the mark past the match.
func (c *Console) Expect(ctx context.Context, re *regexp.Regexp, within time.Duration) ([]string, error) {
	deadline := time.Now().Add(within)
	buf := make([]byte, 512)
	for {
		c.mu.Lock()
		seg := c.text[c.mark:]
		if loc := re.FindSubmatchIndex(seg); loc != nil {
			var subs []string
			for i := 0; i+1 < len(loc); i += 2 {
				if loc[i] < 0 {
					subs = append(subs, "")
					continue
				}
				subs = append(subs, string(seg[loc[i]:loc[i+1]]))
			}
			c.mark += loc[1]
			c.mu.Unlock()
			return subs, nil
		}
		c.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &ExpectError{Pattern: re.String(), Within: within, Tail: c.tail()}
		}
		n, err := c.conn.ReadSome(ctx, buf, left, "console text")
		if n > 0 {
			c.add(buf[:n])
		}
		if err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				continue // the loop reports the expectation, not the read
			}
			return nil, err
		}
	}
}

// Drain reads whatever arrives for d, keeping it.
func (c *Console) Drain(ctx context.Context, d time.Duration) error { return c.Settle(ctx, d, d) }

// Settle reads until the unit has been quiet for quiet, or for at most
// most, keeping what arrives: the rest of a banner after the line a check
// matched belongs in the record.
func (c *Console) Settle(ctx context.Context, quiet, most time.Duration) error {
	buf := make([]byte, 512)
	end := time.Now().Add(most)
	for {
		wait := min(quiet, time.Until(end))
		if wait <= 0 {
			return nil
		}
		n, err := c.conn.ReadSome(ctx, buf, wait, "console text")
		if n > 0 {
			c.add(buf[:n])
		}
		if err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return nil
			}
			return err
		}
	}
}

// tail returns the last non-empty line read, cleaned for a message.
func (c *Console) tail() string {
	c.mu.Lock()
	t := c.text
	c.mu.Unlock()
	t = bytes.TrimRight(t, "\r\n> ")
	if i := bytes.LastIndexAny(t, "\r\n"); i >= 0 {
		t = t[i+1:]
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7F {
			return '.'
		}
		return r
	}, string(t))
	if len(s) > 120 {
		s = s[len(s)-120:]
	}
	return s
}
