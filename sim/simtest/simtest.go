// Package simtest holds what the device models' tests share: a recorder of
// the traffic crossing a line (sim.Line.Tap), and reads from a model's host
// side that wait for a text or for quiet.
package simtest

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"
)

// Traffic records what crosses a line: give its Tap to sim.Line.Tap.
type Traffic struct {
	mu     sync.Mutex
	rx, tx bytes.Buffer
}

// Tap records b, received by the unit ('<') or sent by it ('>').
func (tr *Traffic) Tap(dir byte, b []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if dir == '<' {
		tr.rx.Write(b)
	} else {
		tr.tx.Write(b)
	}
}

// Sent returns everything the unit sent.
func (tr *Traffic) Sent() []byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return bytes.Clone(tr.tx.Bytes())
}

// Received returns everything the unit received.
func (tr *Traffic) Received() []byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return bytes.Clone(tr.rx.Bytes())
}

// WaitSent waits until the unit has sent want, polling: it watches a unit
// driven by another process (a third-party tool on a pseudo-terminal), so
// there is nothing to synchronise with but the effect.
func (tr *Traffic) WaitSent(t testing.TB, want string, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		if bytes.Contains(tr.Sent(), []byte(want)) {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling a real process's effect, not synchronising goroutines
	}
	s := tr.Sent()
	t.Fatalf("the unit never sent %q within %v; it sent %q", want, within, s[max(0, len(s)-200):])
}

// Host is the host side of a unit's link: a sim.PipeHost, or a serial port.
type Host interface {
	io.Reader
	SetReadTimeout(d time.Duration) error
}

// ReadUntil reads from h until the text contains want, and returns it; it
// fails t after within.
func ReadUntil(t testing.TB, h Host, want string, within time.Duration) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	end := time.Now().Add(within)
	h.SetReadTimeout(20 * time.Millisecond)
	for time.Now().Before(end) {
		n, err := h.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return string(got)
		}
		if err != nil {
			break
		}
	}
	t.Fatalf("after %v the unit sent %q, want it to contain %q", within, got, want)
	return ""
}

// Quiet returns what h receives until it has been quiet for d.
func Quiet(h Host, d time.Duration) []byte {
	var got []byte
	buf := make([]byte, 256)
	h.SetReadTimeout(d)
	for {
		n, _ := h.Read(buf)
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}
