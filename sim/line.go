package sim

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Line timing defaults.
const (
	DefaultBaud       = 115200
	DefaultTurnaround = time.Millisecond      // a USB-serial adapter with its latency timer at 1 ms
	FTDITurnaround    = 16 * time.Millisecond // an FTDI adapter at its default latency timer
)

// LineConfig sets how a simulated unit's serial line behaves.
type LineConfig struct {
	// Baud is the rate the unit's UART runs at when the firmware does not set
	// one. 0 means the unit follows whatever rate the host configured, as an
	// autobauding ROM does.
	Baud int
	// BitsPerByte is the number of bit times one byte takes on the wire: 10
	// for 8N1, 11 for 8E1. 0 means Framing's.
	BitsPerByte int
	// Framing is how the unit's UART frames bytes when the firmware does
	// not set it (Session.SetFraming): 8N1 when zero. When the transport
	// can tell the host's framing (HostFramer) and the two differ, bytes
	// cross the line as a UART with the other framing samples them: parity
	// and framing errors, bytes lost (see reframe).
	Framing Framing
	// Turnaround is the delay between the last byte the unit receives and
	// the first byte of its answer reaching the host: the adapter's latency
	// timer plus the firmware's reaction. 0 means DefaultTurnaround; a
	// negative value means none.
	Turnaround time.Duration
	// Fast turns pacing off: bytes pass at once and modelled busy times
	// (erasing, programming) take no time. For unit tests.
	Fast bool
}

func (c LineConfig) bits() int {
	if c.BitsPerByte <= 0 {
		return c.Framing.Bits()
	}
	return c.BitsPerByte
}

func (c LineConfig) turnaround() time.Duration {
	switch {
	case c.Turnaround < 0:
		return 0
	case c.Turnaround == 0:
		return DefaultTurnaround
	}
	return c.Turnaround
}

// Transport is the device side of a serial link: the master of a
// pseudo-terminal, or one end of an in-memory Pipe.
type Transport interface {
	io.ReadWriteCloser
}

// HostRater is implemented by transports that can tell the rate the host
// configured on its side (a pseudo-terminal can: the host's termios).
type HostRater interface {
	HostBaud() (int, error)
}

// ErrHalted is returned by a Session's reads and writes once the unit has
// been powered off or reset.
var ErrHalted = errors.New("sim: unit halted (power off or reset)")

// ErrReadTimeout is returned by Session.ReadTimeout when nothing arrives in time.
var ErrReadTimeout = errors.New("sim: read timeout")

// LineStats counts what crossed a line.
type LineStats struct {
	RxBytes int64 // bytes the unit received
	TxBytes int64 // bytes the unit sent
	Replies int64 // writes that followed received bytes (each paid one turnaround)
	// RxErrors counts bytes the unit's UART received with a parity or
	// framing error (the host's framing differs from the unit's); they are
	// not delivered. TxErrors counts bytes the host's UART received with
	// one.
	RxErrors int64
	TxErrors int64
}

// Line is the unit's end of its serial link. It paces bytes at the line rate
// in both directions, delays each answer by the turnaround, garbles bytes
// when the host's rate does not match the unit's, and drops what arrives
// while the unit is not powered.
//
// Pacing uses the real clock: a line is for running the bench, and unit
// tests set Fast.
type Line struct {
	cfg LineConfig

	mu        sync.Mutex
	t         Transport
	gen       int // transport generation; a pump of an old one stops delivering
	rx        []byte
	notify    chan struct{} // closed and replaced when rx grows or the state changes
	listening bool
	replyDue  bool // bytes were delivered to the firmware since its last write
	rxFree    time.Time
	txFree    time.Time
	baud      int           // rate set by the firmware; 0 = cfg.Baud
	framing   *Framing      // framing set by the firmware; nil = cfg.Framing
	late      time.Duration // how late the last paced event happened (timer oversleep)
	stats     LineStats
	tap       func(dir byte, b []byte) // optional observer of raw traffic
}

// NewLine returns an unplugged line.
func NewLine(cfg LineConfig) *Line {
	return &Line{cfg: cfg, notify: make(chan struct{})}
}

// Config returns the line's configuration.
func (l *Line) Config() LineConfig { return l.cfg }

// Tap sets f to be called with every chunk the unit receives ('<', as its
// UART sampled it) and sends ('>', as it left the unit: before the host's
// UART samples it in another framing), after garbling by a rate mismatch,
// on the goroutine that moved it. For logs and tests.
func (l *Line) Tap(f func(dir byte, b []byte)) {
	l.mu.Lock()
	l.tap = f
	l.mu.Unlock()
}

// Attach plugs the line into a transport, closing any previous one, and
// starts moving received bytes.
func (l *Line) Attach(t Transport) {
	l.mu.Lock()
	old := l.t
	l.t = t
	l.gen++
	gen := l.gen
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go l.pump(t, gen)
}

// Detach unplugs the line: the transport is closed, so the host sees its
// port vanish. The unit keeps running; what it sends is lost.
func (l *Line) Detach() {
	l.mu.Lock()
	old := l.t
	l.t = nil
	l.gen++
	l.wakeLocked()
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// Attached reports whether a transport is plugged in.
func (l *Line) Attached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t != nil
}

// Stats returns the traffic counters.
func (l *Line) Stats() LineStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

func (l *Line) wakeLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// setListening makes the line deliver (true) or drop (false) received bytes.
// Turning it off also drops bytes not yet read.
func (l *Line) setListening(on bool) {
	l.mu.Lock()
	l.listening = on
	if !on {
		l.rx = nil
		l.replyDue = false
		l.baud = 0
		l.framing = nil
	}
	l.wakeLocked()
	l.mu.Unlock()
}

// devFraming returns the unit's current framing. The caller holds l.mu.
func (l *Line) devFramingLocked() Framing {
	if l.framing != nil {
		return *l.framing
	}
	return l.cfg.Framing
}

// framings returns the unit's framing and, when the transport can tell it
// (HostFramer), the host's; ok is false when the host's is unknown.
func (l *Line) framings() (dev Framing, host HostLine, ok bool) {
	l.mu.Lock()
	dev = l.devFramingLocked()
	t := l.t
	l.mu.Unlock()
	if hf, is := t.(HostFramer); is {
		h, declared, err := hf.HostLine()
		if err == nil && declared {
			return dev, h, true
		}
	}
	return dev, HostLine{}, false
}

// rate returns the unit's current line rate and whether the host's rate
// matches it.
func (l *Line) rate() (baud int, match bool) {
	l.mu.Lock()
	dev := l.baud
	if dev == 0 {
		dev = l.cfg.Baud
	}
	t := l.t
	l.mu.Unlock()
	host := 0
	if hr, ok := t.(HostRater); ok {
		if b, err := hr.HostBaud(); err == nil {
			host = b
		}
	}
	switch {
	case dev == 0 && host == 0:
		return DefaultBaud, true
	case dev == 0:
		return host, true
	case host == 0:
		return dev, true
	}
	// A UART tolerates a few percent of rate error.
	diff := dev - host
	if diff < 0 {
		diff = -diff
	}
	return dev, diff*100 <= dev*3
}

// wireTime returns the time n bytes take on the wire at baud.
func (l *Line) wireTime(n, baud int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) * int64(l.cfg.bits()) / int64(baud))
}

// garble models bytes sampled at the wrong rate: framing errors that turn
// every byte into something else.
func garble(b []byte) {
	for i, c := range b {
		b[i] = (c<<3 | c>>5) ^ 0xA5
	}
}

// chunk is how many bytes pacing moves at once: fine enough that a reader
// sees bytes arrive over time, coarse enough to keep timer wake-ups rare.
const chunk = 16

func (l *Line) pump(t Transport, gen int) {
	buf := make([]byte, 4096)
	for {
		n, err := t.Read(buf)
		if n > 0 {
			// What one read returns left the host back to back: the
			// unit's UART samples it as one burst.
			baud, got, bad := l.sample(buf[:n])
			for off := 0; off < n; off += chunk {
				end := min(off+chunk, n)
				// Pace by the bytes the host sent; deliver what the UART
				// made of them in proportion.
				part := got[len(got)*off/n : len(got)*end/n]
				if !l.receive(end-off, part, baud, gen) {
					return
				}
			}
			if bad > 0 {
				l.mu.Lock()
				l.stats.RxErrors += int64(bad)
				l.mu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

// sample returns what the unit's UART makes of a burst the host sent: the
// bytes garbled when the rates differ; when the framings differ, the bytes
// it sampled without a parity or framing error, and how many it sampled
// with one. ST does not say what the STM32 ROM does with a byte whose
// parity error flag is set (USART_SR PE, RM0008 §27.6.1); dropping it is
// the stricter choice: the command it belonged to never completes.
func (l *Line) sample(b []byte) (baud int, got []byte, bad int) {
	b = append([]byte(nil), b...)
	baud, match := l.rate()
	if !match {
		garble(b)
		return baud, b, 0
	}
	dev, host, ok := l.framings()
	if !ok || host.Framing == dev {
		return baud, b, 0
	}
	got = make([]byte, 0, len(b))
	for _, r := range reframe(b, host.Framing, dev) {
		if r.bad {
			bad++
			continue
		}
		got = append(got, r.b)
	}
	return baud, got, bad
}

// ref returns the moment the line's timeline stands at: now, less how late
// the last paced event happened. Timers oversleep (by about a millisecond
// on many Linux machines); whoever reacts to an event reacts that much late,
// and without this the oversleep of every chunk, answer and busy period
// would add up into the simulated wire time. The caller holds l.mu.
func (l *Line) ref(now time.Time) time.Time { return now.Add(-l.late) }

// noteLate records how late an event planned for at happened.
func (l *Line) noteLate(at time.Time) {
	late := time.Since(at)
	l.mu.Lock()
	l.late = max(late, 0)
	l.mu.Unlock()
}

// waitArrival waits until t, waking early to return false when the
// transport of generation gen is replaced (the line is unplugged or
// closed): a closed line leaves no goroutine pacing bytes nobody will read.
func (l *Line) waitArrival(t time.Time, gen int, notify chan struct{}) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
			return true
		case <-notify:
			timer.Stop()
			l.mu.Lock()
			gone := gen != l.gen
			notify = l.notify
			l.mu.Unlock()
			if gone {
				return false
			}
		}
	}
}

// receive paces n bytes as arriving at the unit at baud and delivers b,
// what its UART made of them. It returns false when the transport has been
// replaced.
func (l *Line) receive(n int, b []byte, baud int, gen int) bool {
	if !l.cfg.Fast {
		l.mu.Lock()
		start := l.rxFree
		if now := l.ref(time.Now()); start.Before(now) {
			start = now
		}
		l.rxFree = start.Add(l.wireTime(n, baud))
		arrive := l.rxFree
		notify := l.notify
		l.mu.Unlock()
		if !l.waitArrival(arrive, gen, notify) {
			return false // unplugged while the bytes were on the wire
		}
		l.noteLate(arrive)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return false
	}
	if l.tap != nil && len(b) > 0 {
		l.tap('<', b)
	}
	if l.listening && len(b) > 0 {
		l.rx = append(l.rx, b...)
		l.stats.RxBytes += int64(len(b))
		l.wakeLocked()
	}
	return true
}

// read moves received bytes into p, waiting until some arrive, ctx is done,
// or the deadline passes (a zero deadline waits without limit).
func (l *Line) read(ctx context.Context, p []byte, deadline time.Time) (int, error) {
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	for {
		l.mu.Lock()
		if err := ctx.Err(); err != nil {
			l.mu.Unlock()
			return 0, ErrHalted
		}
		if len(l.rx) > 0 {
			n := copy(p, l.rx)
			l.rx = l.rx[n:]
			l.replyDue = true
			l.mu.Unlock()
			return n, nil
		}
		wait := l.notify
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, ErrHalted
		case <-timer:
			return 0, ErrReadTimeout
		}
	}
}

// write sends p to the host at the line rate, after the turnaround when it
// answers something the unit received. It returns when the last byte has
// left the unit, or ErrHalted when ctx ends first.
func (l *Line) write(ctx context.Context, p []byte) error {
	baud, match := l.rate()
	b := append([]byte(nil), p...)
	if !match {
		garble(b)
	}
	dev, host, reframed := l.framings()
	reframed = reframed && match && host.Framing != dev
	l.mu.Lock()
	now := time.Now()
	if !l.cfg.Fast {
		now = l.ref(now)
	}
	start := l.txFree
	if start.Before(now) {
		start = now
	}
	if l.replyDue {
		l.replyDue = false
		l.stats.Replies++
		if ta := now.Add(l.cfg.turnaround()); start.Before(ta) {
			start = ta
		}
	}
	if !l.cfg.Fast {
		l.txFree = start.Add(l.wireTime(len(b), baud))
	}
	l.stats.TxBytes += int64(len(b))
	tap := l.tap
	l.mu.Unlock()

	for off := 0; off < len(b); off += chunk {
		end := min(off+chunk, len(b))
		if !l.cfg.Fast {
			at := start.Add(l.wireTime(end, baud))
			if err := sleepUntil(ctx, at); err != nil {
				return ErrHalted
			}
			l.noteLate(at)
		} else if ctx.Err() != nil {
			return ErrHalted
		}
		if tap != nil {
			tap('>', b[off:end])
		}
		out := b[off:end]
		if reframed {
			out = l.hostReceives(out, dev, host)
		}
		if err := l.deliver(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// hostReceives returns what the host reads when the unit sends b in
// framing dev to a host port set up as host: bytes its UART samples with an
// error read as 0x00 when the host checks parity (INPCK), are dropped when
// it ignores errors too (IGNPAR), and read as sampled when it does not
// check (Linux drivers/tty/n_tty.c, n_tty_receive_parity_error).
func (l *Line) hostReceives(b []byte, dev Framing, host HostLine) []byte {
	out := make([]byte, 0, len(b))
	bad := 0
	for _, r := range reframe(b, dev, host.Framing) {
		switch {
		case !r.bad || !host.Check:
			out = append(out, r.b)
		case host.Ignore:
		default:
			out = append(out, 0)
		}
		if r.bad {
			bad++
		}
	}
	l.mu.Lock()
	l.stats.TxErrors += int64(bad)
	l.mu.Unlock()
	return out
}

// writeDeadliner is implemented by transports whose writes can time out, so
// that a host that stopped reading cannot wedge the unit forever.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// deliver hands b to the transport. Bytes sent while unplugged are lost.
func (l *Line) deliver(ctx context.Context, b []byte) error {
	l.mu.Lock()
	t := l.t
	l.mu.Unlock()
	if t == nil {
		return nil
	}
	wd, canTimeout := t.(writeDeadliner)
	for len(b) > 0 {
		if ctx.Err() != nil {
			return ErrHalted
		}
		if canTimeout {
			_ = wd.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		}
		n, err := t.Write(b)
		b = b[n:]
		if err != nil {
			if canTimeout && errors.Is(err, errDeadline) {
				continue // the host is not reading; keep trying until halted
			}
			return nil // unplugged or closed: the bytes are lost, the unit carries on
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
