package ymodem_test

import (
	"io"
	"sync"
	"time"
)

// wire is one direction of an in-memory serial line between two hosts. It
// can damage what crosses it: mangle sees every byte with its offset on the
// wire and returns what arrives (drop: nothing does).
type wire struct {
	mu     sync.Mutex
	buf    []byte
	closed bool
	notify chan struct{}
	sent   int64
	mangle func(off int64, b byte) (out byte, drop bool)
}

func newWire() *wire { return &wire{notify: make(chan struct{})} }

func (w *wire) wake() {
	close(w.notify)
	w.notify = make(chan struct{})
}

func (w *wire) write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, io.ErrClosedPipe
	}
	for _, c := range b {
		off := w.sent
		w.sent++
		if w.mangle != nil {
			var drop bool
			if c, drop = w.mangle(off, c); drop {
				continue
			}
		}
		w.buf = append(w.buf, c)
	}
	w.wake()
	return len(b), nil
}

func (w *wire) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.wake()
	}
	w.mu.Unlock()
}

// port is one host's end: a bootloader.Port whose Read returns (0, nil)
// when its timeout passes, as a serial port does.
type port struct {
	in, out *wire
	mu      sync.Mutex
	timeout time.Duration
}

// portPair returns the two ends of an in-memory line. It uses only
// channels and timers, so it runs under testing/synctest.
func portPair() (a, b *port) {
	ab, ba := newWire(), newWire()
	return &port{in: ba, out: ab, timeout: -1}, &port{in: ab, out: ba, timeout: -1}
}

func (p *port) Read(b []byte) (int, error) {
	p.mu.Lock()
	d := p.timeout
	p.mu.Unlock()
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	for {
		p.in.mu.Lock()
		if len(p.in.buf) > 0 {
			n := copy(b, p.in.buf)
			p.in.buf = p.in.buf[n:]
			p.in.mu.Unlock()
			return n, nil
		}
		if p.in.closed {
			p.in.mu.Unlock()
			return 0, io.EOF
		}
		wait := p.in.notify
		p.in.mu.Unlock()
		select {
		case <-wait:
		case <-timer:
			return 0, nil
		}
	}
}

func (p *port) Write(b []byte) (int, error) { return p.out.write(b) }

func (p *port) SetReadTimeout(d time.Duration) error {
	p.mu.Lock()
	p.timeout = d
	p.mu.Unlock()
	return nil
}

func (p *port) Close() error {
	p.in.close()
	p.out.close()
	return nil
}

// streamPort replays a fixed byte stream to whoever reads it and swallows
// what it writes; once the stream is used up, reads fail with io.EOF. It
// stands for a peer that ignores the answers, for fuzzing.
type streamPort struct {
	data    []byte
	chunk   int
	written []byte
}

func (s *streamPort) Read(b []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(s.data), max(s.chunk, 1))
	copy(b, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *streamPort) Write(b []byte) (int, error) {
	if len(s.written) < 1<<16 {
		s.written = append(s.written, b...)
	}
	return len(b), nil
}

func (s *streamPort) SetReadTimeout(time.Duration) error { return nil }
