package sim

import (
	"context"
	"sync"
	"time"
)

// Model is the firmware side of a simulated unit: what runs from a reset
// until the next. Its persistent state (flash, option bytes, eFuses) lives in
// the Model value and survives power cycles; anything in RAM lives in Run.
type Model interface {
	// Run runs the unit from reset. It returns when s's context ends (power
	// off, reset held) or when the firmware resets the unit itself with
	// s.Reset. s.Boot tells the boot-strap level sampled at reset.
	Run(s *Session)
}

// Cause says why a unit started running.
type Cause int

// Reset causes.
const (
	PowerOn  Cause = iota // the supply came up
	External              // the reset line was released
	Software              // the firmware reset itself (GO, READOUT_UNPROTECT, a watchdog)
)

func (c Cause) String() string {
	return [...]string{"power-on", "external reset", "software reset"}[c]
}

// Session is one run of a unit's firmware, from a reset to the next: its
// view of the serial line and of the pins it sampled at reset.
type Session struct {
	Boot  bool  // the boot strap was asserted at reset
	Cause Cause // why this run started

	ctx     context.Context
	line    *Line
	dev     *Device
	mu      sync.Mutex
	restart bool
}

// Context returns a context that ends when the run ends.
func (s *Session) Context() context.Context { return s.ctx }

// Done reports whether the run has ended.
func (s *Session) Done() bool { return s.ctx.Err() != nil }

// Read reads received bytes, waiting until at least one arrives. It returns
// ErrHalted when the run ends.
func (s *Session) Read(p []byte) (int, error) { return s.line.read(s.ctx, p, time.Time{}) }

// ReadTimeout is Read that gives up with ErrReadTimeout after d.
func (s *Session) ReadTimeout(p []byte, d time.Duration) (int, error) {
	return s.line.read(s.ctx, p, time.Now().Add(d))
}

// ReadByte reads one byte.
func (s *Session) ReadByte() (byte, error) {
	var b [1]byte
	_, err := s.Read(b[:])
	return b[0], err
}

// ReadByteTimeout reads one byte, giving up with ErrReadTimeout after d.
func (s *Session) ReadByteTimeout(d time.Duration) (byte, error) {
	var b [1]byte
	_, err := s.ReadTimeout(b[:], d)
	return b[0], err
}

// ReadFull reads exactly len(p) bytes.
func (s *Session) ReadFull(p []byte) error {
	for n := 0; n < len(p); {
		m, err := s.Read(p[n:])
		n += m
		if err != nil {
			return err
		}
	}
	return nil
}

// ReadFullTimeout reads exactly len(p) bytes, each within d of the previous
// one (an inter-byte timeout, as ROM bootloaders use).
func (s *Session) ReadFullTimeout(p []byte, d time.Duration) error {
	for n := 0; n < len(p); {
		m, err := s.ReadTimeout(p[n:], d)
		n += m
		if err != nil {
			return err
		}
	}
	return nil
}

// Write sends p to the host at the line rate and returns when the last byte
// has left. It returns ErrHalted when the run ends first.
func (s *Session) Write(p []byte) (int, error) {
	if err := s.line.write(s.ctx, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Print writes a string (a console line, a banner).
func (s *Session) Print(str string) error {
	_, err := s.Write([]byte(str))
	return err
}

// SetBaud sets the unit's UART rate for the rest of this run (0 follows the
// host). A mismatch with the host's rate garbles bytes both ways.
func (s *Session) SetBaud(baud int) {
	s.line.mu.Lock()
	s.line.baud = baud
	s.line.mu.Unlock()
}

// SetFraming sets the unit's UART framing for the rest of this run (the
// line's configured framing until then). When the host frames otherwise,
// bytes cross with parity and framing errors (see LineConfig.Framing).
func (s *Session) SetFraming(f Framing) {
	s.line.mu.Lock()
	s.line.framing = &f
	s.line.mu.Unlock()
}

// HostBaud returns the rate the host sends at, as far as the transport can
// tell (DefaultBaud when it cannot): what an autobauding ROM measures.
func (s *Session) HostBaud() int {
	s.line.mu.Lock()
	t := s.line.t
	s.line.mu.Unlock()
	if hr, ok := t.(HostRater); ok {
		if b, err := hr.HostBaud(); err == nil && b > 0 {
			return b
		}
	}
	return DefaultBaud
}

// FramingErrors reports whether the host's line rate is off the unit's by
// more than a UART tolerates, so that every byte the unit receives now
// carries a framing error (and arrives garbled). Firmware that checks its
// UART's FE flag asks this.
func (s *Session) FramingErrors() bool {
	_, match := s.line.rate()
	return !match
}

// Busy models the unit being busy for d (erasing a sector, programming a
// page): it waits d, or not at all on a Fast line. It returns ErrHalted if
// the run ends first.
func (s *Session) Busy(d time.Duration) error {
	if s.line.cfg.Fast || d <= 0 {
		if s.Done() {
			return ErrHalted
		}
		return nil
	}
	s.line.mu.Lock()
	at := s.line.ref(time.Now()).Add(d)
	s.line.mu.Unlock()
	if sleepUntil(s.ctx, at) != nil {
		return ErrHalted
	}
	s.line.noteLate(at)
	return nil
}

// Wait waits d of real firmware time (a boot delay, an autoboot countdown)
// whatever the line's pacing. It returns ErrHalted if the run ends first.
func (s *Session) Wait(d time.Duration) error {
	if sleepUntil(s.ctx, time.Now().Add(d)) != nil {
		return ErrHalted
	}
	return nil
}

// Reset asks for a software reset: the caller must return from Run, after
// which the unit starts again with the strap sampled anew.
func (s *Session) Reset() {
	s.mu.Lock()
	s.restart = true
	s.mu.Unlock()
}

// Device is a simulated unit: a Model behind a Line, with the three inputs a
// bench drives (power, boot strap, reset). Inputs take logical levels
// (asserted or not); the bench wiring maps pin levels to them.
type Device struct {
	Name string
	Line *Line

	model Model

	mu      sync.Mutex
	power   bool
	boot    bool
	reset   bool
	cancel  context.CancelFunc
	done    chan struct{}
	boots   []Boot
	onBoot  func(Boot)
	stopped bool
}

// Boot records one start of a unit's firmware.
type Boot struct {
	Time  time.Time
	Cause Cause
	Strap bool // boot strap asserted: the ROM bootloader ran
}

// NewDevice returns an unpowered unit running m behind line.
func NewDevice(name string, m Model, line *Line) *Device {
	return &Device{Name: name, Line: line, model: m}
}

// Model returns the unit's firmware model.
func (d *Device) Model() Model { return d.model }

// OnBoot sets f to be called at each start of the firmware.
func (d *Device) OnBoot(f func(Boot)) {
	d.mu.Lock()
	d.onBoot = f
	d.mu.Unlock()
}

// Boots returns every start of the firmware so far.
func (d *Device) Boots() []Boot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Boot(nil), d.boots...)
}

// Powered reports whether the unit is powered.
func (d *Device) Powered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.power
}

// Running reports whether firmware is running (powered and not held in reset).
func (d *Device) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel != nil
}

// SetPower switches the unit's supply.
func (d *Device) SetPower(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on == d.power {
		return
	}
	d.power = on
	if on {
		if !d.reset {
			d.startLocked(PowerOn)
		}
		return
	}
	d.stopLocked()
}

// SetBoot sets the boot strap. The firmware samples it at the next reset.
func (d *Device) SetBoot(asserted bool) {
	d.mu.Lock()
	d.boot = asserted
	d.mu.Unlock()
}

// SetReset holds the unit in reset (true) or releases it (false).
func (d *Device) SetReset(asserted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if asserted == d.reset {
		return
	}
	d.reset = asserted
	if asserted {
		d.stopLocked()
		return
	}
	if d.power {
		d.startLocked(External)
	}
}

// Close powers the unit off and unplugs its line.
func (d *Device) Close() {
	d.mu.Lock()
	d.stopped = true
	d.power = false
	d.stopLocked()
	d.mu.Unlock()
	d.Line.Detach()
}

func (d *Device) startLocked(c Cause) {
	if d.stopped {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{Boot: d.boot, Cause: c, ctx: ctx, line: d.Line, dev: d}
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	b := Boot{Time: time.Now(), Cause: c, Strap: d.boot}
	d.boots = append(d.boots, b)
	if d.onBoot != nil {
		d.onBoot(b)
	}
	d.Line.setListening(true)
	go d.run(s, done)
}

func (d *Device) run(s *Session, done chan struct{}) {
	for {
		d.model.Run(s)
		s.mu.Lock()
		restart := s.restart
		s.mu.Unlock()
		if !restart || s.Done() {
			close(done)
			return
		}
		// A software reset: sample the strap again and start over, unless the
		// bench stopped the unit meanwhile (stopLocked waits on done, so the
		// lock is free only if it is not stopping us).
		d.mu.Lock()
		if s.Done() {
			d.mu.Unlock()
			close(done)
			return
		}
		d.Line.setListening(true)
		ns := &Session{Boot: d.boot, Cause: Software, ctx: s.ctx, line: d.Line, dev: d}
		b := Boot{Time: time.Now(), Cause: Software, Strap: d.boot}
		d.boots = append(d.boots, b)
		if d.onBoot != nil {
			d.onBoot(b)
		}
		d.mu.Unlock()
		s = ns
	}
}

// stopLocked ends the current run and waits for the firmware to return, so
// that two runs never touch the model at once.
func (d *Device) stopLocked() {
	if d.cancel == nil {
		return
	}
	d.Line.setListening(false)
	d.cancel()
	done := d.done
	d.cancel, d.done = nil, nil
	// The firmware may need the lock to finish a software reset; it checks
	// s.Done() first, so waiting with the lock held is safe as long as the
	// wait does not hold it while run() tries to take it. Release it.
	d.mu.Unlock()
	<-done
	d.mu.Lock()
}
