package sim

import (
	"io"
	"sync"
	"time"
)

// queue is one direction of a Pipe.
type queue struct {
	mu     sync.Mutex
	buf    []byte
	closed bool
	notify chan struct{}
}

func newQueue() *queue { return &queue{notify: make(chan struct{})} }

func (q *queue) wake() {
	close(q.notify)
	q.notify = make(chan struct{})
}

func (q *queue) write(b []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, io.ErrClosedPipe
	}
	q.buf = append(q.buf, b...)
	q.wake()
	return len(b), nil
}

func (q *queue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		q.wake()
	}
	q.mu.Unlock()
}

// read waits up to timeout (negative: forever) for bytes. On timeout it
// returns (0, nil), as a serial port does.
func (q *queue) read(b []byte, timeout time.Duration) (int, error) {
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		q.mu.Lock()
		if len(q.buf) > 0 {
			n := copy(b, q.buf)
			q.buf = q.buf[n:]
			q.mu.Unlock()
			return n, nil
		}
		if q.closed {
			q.mu.Unlock()
			return 0, io.EOF
		}
		wait := q.notify
		q.mu.Unlock()
		select {
		case <-wait:
		case <-timer:
			return 0, nil
		}
	}
}

// PipeHost is the host end of an in-memory serial link. It satisfies
// bootloader.Port: Read honours SetReadTimeout and returns (0, nil) on
// timeout, as go.bug.st/serial does.
type PipeHost struct {
	in, out *queue
	mu      sync.Mutex
	timeout time.Duration
	baud    int
	line    *HostLine // set by SetParity; nil: not declared
}

// PipeDevice is the device end of an in-memory serial link; hand it to
// Line.Attach. It reports the rate set on the host end with SetBaud.
type PipeDevice struct {
	in, out *queue
	host    *PipeHost
}

// Pipe returns the two ends of an in-memory serial link. It uses only
// channels and timers, so tests can run it under testing/synctest.
func Pipe() (*PipeHost, *PipeDevice) {
	h2d, d2h := newQueue(), newQueue()
	h := &PipeHost{in: d2h, out: h2d, timeout: -1}
	return h, &PipeDevice{in: h2d, out: d2h, host: h}
}

func (h *PipeHost) Read(b []byte) (int, error) {
	h.mu.Lock()
	t := h.timeout
	h.mu.Unlock()
	return h.in.read(b, t)
}

func (h *PipeHost) Write(b []byte) (int, error) { return h.out.write(b) }

// SetReadTimeout sets how long Read waits; negative waits forever.
func (h *PipeHost) SetReadTimeout(d time.Duration) error {
	h.mu.Lock()
	h.timeout = d
	h.mu.Unlock()
	return nil
}

// ResetInputBuffer drops bytes received and not yet read.
func (h *PipeHost) ResetInputBuffer() error {
	h.in.mu.Lock()
	h.in.buf = nil
	h.in.mu.Unlock()
	return nil
}

// SetBaud records the host's line rate, which the device end reports.
func (h *PipeHost) SetBaud(b int) error {
	h.mu.Lock()
	h.baud = b
	h.mu.Unlock()
	return nil
}

// SetParity declares the host end's framing: 8 data bits, the parity
// ("none", "even", "odd", "mark", "space") and 1 stop bit, its driver
// checking the parity of what it receives when there is one, as
// go.bug.st/serial sets a port up. A link whose host never declared one is
// not reframed by the line.
func (h *PipeHost) SetParity(parity string) error {
	p, err := ParseParity(parity)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.line = &HostLine{Framing: Framing{Parity: p}, Check: p != ParityNone}
	h.mu.Unlock()
	return nil
}

// Close closes the link in both directions.
func (h *PipeHost) Close() error {
	h.in.close()
	h.out.close()
	return nil
}

func (d *PipeDevice) Read(b []byte) (int, error)  { return d.in.read(b, -1) }
func (d *PipeDevice) Write(b []byte) (int, error) { return d.out.write(b) }

// Close closes the link in both directions: the host sees the unit unplugged.
func (d *PipeDevice) Close() error {
	d.in.close()
	d.out.close()
	return nil
}

// HostBaud returns the rate set on the host end, or 0 if none was set.
func (d *PipeDevice) HostBaud() (int, error) {
	d.host.mu.Lock()
	defer d.host.mu.Unlock()
	return d.host.baud, nil
}

// HostLine returns the framing declared with SetParity; ok is false when
// none was.
func (d *PipeDevice) HostLine() (HostLine, bool, error) {
	d.host.mu.Lock()
	defer d.host.mu.Unlock()
	if d.host.line == nil {
		return HostLine{}, false, nil
	}
	return *d.host.line, true, nil
}
