package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults are failures injected into one unit of the virtual bench, for
// testing how the station copes with a flaky cable, a cheap adapter, a unit
// that browns out, or one whose flash is wearing out. The zero value injects
// nothing. They are written as a comma-separated list (ParseFaults), for a
// bench option or a command-line flag, e.g.
//
//	ber=1e-4,drop=1e-4,stop=3000,brownout=2048,bad-page=0x08001000
//
// Line faults act on the bytes in both directions; flash faults on what the
// model programs and erases; the rest are carried out by the bench (sim/
// simbench), which owns the unit's port and power.
type Faults struct {
	// BitErrors is the probability that a byte crossing the line, either
	// way, arrives with one bit flipped (line noise, a bad ground).
	BitErrors float64
	// Drops is the probability that a byte crossing the line is lost (an
	// overrun in a cheap adapter).
	Drops float64
	// StopAfter makes the unit stop answering after this many more bytes
	// received, mid-block, until it is reset or powered off: a hung unit.
	// It fires once. 0 means never.
	StopAfter int
	// AdapterSilent makes the unit's port pass nothing from the unit to the
	// host: an adapter that returns nothing. The port stays present.
	AdapterSilent bool
	// Brownout cuts the unit's power after this many more bytes have been
	// programmed into its flash, mid-write: the flash keeps what was
	// programmed so far. Power comes back at once if the relay is still on.
	// It fires once. 0 means never.
	Brownout int64
	// SlowErase adds this much time to every erase (a flash near the end of
	// its life erases slowly).
	SlowErase time.Duration
	// BadPage is an address in the erase unit (page or sector) that fails
	// to program: programming leaves its bytes as they were. HasBadPage
	// says whether it is set.
	BadPage    uint32
	HasBadPage bool
	// WrongVersion makes the application print this version instead of the
	// one in its image, as a unit that boots an old bank would.
	WrongVersion string
	// NACKs is a NACK storm: the bootloader refuses the next n commands that
	// write flash (carried out by the model where it has such a knob).
	NACKs int
	// Flap makes the port vanish for this long once, after FlapAfter bytes
	// received, and come back (a loose USB connector).
	Flap      time.Duration
	FlapAfter int
	// Seed makes the random faults repeatable.
	Seed uint64
}

// Zero reports whether f injects nothing.
func (f Faults) Zero() bool { return f == Faults{Seed: f.Seed} }

// faultKeys lists the spec's keys with what each takes, for ParseFaults'
// error messages.
var faultKeys = map[string]string{
	"ber":            "a probability per byte, e.g. 1e-4",
	"drop":           "a probability per byte, e.g. 1e-4",
	"stop":           "a number of bytes received",
	"adapter-silent": "no value",
	"brownout":       "a number of bytes programmed",
	"slow-erase":     "a duration, e.g. 2s",
	"bad-page":       "an address, e.g. 0x08001000",
	"wrong-version":  "a version, e.g. 0.9.0",
	"nack":           "a number of commands",
	"flap":           "a duration, e.g. 500ms",
	"flap-after":     "a number of bytes received",
	"seed":           "a number",
}

// ParseFaults reads a fault spec: comma-separated key=value items (see
// Faults; `adapter-silent` takes no value). An empty spec injects nothing.
func ParseFaults(spec string) (Faults, error) {
	var f Faults
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return f, nil
	}
	col := 1
	for item := range strings.SplitSeq(spec, ",") {
		at := col
		col += len(item) + 1
		key, val, hasVal := strings.Cut(strings.TrimSpace(item), "=")
		want, known := faultKeys[key]
		if !known {
			var keys []string
			for k := range faultKeys {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return Faults{}, fmt.Errorf("faults: column %d: unknown fault %q; known: %s", at, key, strings.Join(keys, ", "))
		}
		bad := func(err error) error {
			return fmt.Errorf("faults: column %d: %s=%q: want %s (%v)", at, key, val, want, err)
		}
		if key == "adapter-silent" {
			if hasVal {
				return Faults{}, fmt.Errorf("faults: column %d: adapter-silent takes no value", at)
			}
			f.AdapterSilent = true
			continue
		}
		if !hasVal || val == "" {
			return Faults{}, fmt.Errorf("faults: column %d: %s needs a value: %s", at, key, want)
		}
		var err error
		switch key {
		case "ber", "drop":
			var p float64
			p, err = strconv.ParseFloat(val, 64)
			if err == nil && (p < 0 || p > 1 || p != p) {
				err = fmt.Errorf("out of [0, 1]")
			}
			if key == "ber" {
				f.BitErrors = p
			} else {
				f.Drops = p
			}
		case "stop", "nack", "flap-after":
			var n int
			n, err = strconv.Atoi(val)
			if err == nil && n < 0 {
				err = fmt.Errorf("negative")
			}
			switch key {
			case "stop":
				f.StopAfter = n
			case "nack":
				f.NACKs = n
			default:
				f.FlapAfter = n
			}
		case "brownout":
			f.Brownout, err = strconv.ParseInt(val, 0, 64)
			if err == nil && f.Brownout < 0 {
				err = fmt.Errorf("negative")
			}
		case "slow-erase", "flap":
			var d time.Duration
			d, err = time.ParseDuration(val)
			if err == nil && (d < 0 || d > time.Hour) {
				err = fmt.Errorf("out of 0-1h")
			}
			if key == "flap" {
				f.Flap = d
			} else {
				f.SlowErase = d
			}
		case "bad-page":
			var a uint64
			a, err = strconv.ParseUint(val, 0, 32)
			f.BadPage, f.HasBadPage = uint32(a), err == nil
		case "wrong-version":
			if len(val) > 24 {
				err = fmt.Errorf("longer than 24 bytes")
			}
			f.WrongVersion = val
		case "seed":
			f.Seed, err = strconv.ParseUint(val, 0, 64)
		}
		if err != nil {
			return Faults{}, bad(err)
		}
	}
	return f, nil
}

// String writes f back as a spec ParseFaults reads.
func (f Faults) String() string {
	var s []string
	add := func(k, v string) { s = append(s, k+"="+v) }
	if f.BitErrors > 0 {
		add("ber", strconv.FormatFloat(f.BitErrors, 'g', -1, 64))
	}
	if f.Drops > 0 {
		add("drop", strconv.FormatFloat(f.Drops, 'g', -1, 64))
	}
	if f.StopAfter > 0 {
		add("stop", strconv.Itoa(f.StopAfter))
	}
	if f.AdapterSilent {
		s = append(s, "adapter-silent")
	}
	if f.Brownout > 0 {
		add("brownout", strconv.FormatInt(f.Brownout, 10))
	}
	if f.SlowErase > 0 {
		add("slow-erase", f.SlowErase.String())
	}
	if f.HasBadPage {
		add("bad-page", fmt.Sprintf("0x%X", f.BadPage))
	}
	if f.WrongVersion != "" {
		add("wrong-version", f.WrongVersion)
	}
	if f.NACKs > 0 {
		add("nack", strconv.Itoa(f.NACKs))
	}
	if f.Flap > 0 {
		add("flap", f.Flap.String())
	}
	if f.FlapAfter > 0 {
		add("flap-after", strconv.Itoa(f.FlapAfter))
	}
	if f.Seed != 0 {
		add("seed", strconv.FormatUint(f.Seed, 10))
	}
	return strings.Join(s, ",")
}

// lineFault carries out a unit's line faults. Its methods are called with
// the line's lock held.
type lineFault struct {
	f       Faults
	rng     *rand.Rand
	rx      int  // bytes received since the faults were set
	stopped bool // StopAfter fired and the unit has not been reset since
	fired   bool // StopAfter fired (once)
	onRx    func(total int)
}

func newFaultRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// noise flips a bit or drops a byte at the configured rates.
func (lf *lineFault) noise(b []byte) []byte {
	if lf.f.BitErrors == 0 && lf.f.Drops == 0 {
		return b
	}
	out := b[:0]
	for _, c := range b {
		if lf.f.Drops > 0 && lf.rng.Float64() < lf.f.Drops {
			continue
		}
		if lf.f.BitErrors > 0 && lf.rng.Float64() < lf.f.BitErrors {
			c ^= 1 << lf.rng.IntN(8)
		}
		out = append(out, c)
	}
	return out
}

// received filters bytes on their way to the unit. A hung unit hears
// nothing until it is reset.
func (lf *lineFault) received(b []byte) []byte {
	b = lf.noise(b)
	n := len(b)
	switch {
	case lf.stopped:
		b = nil
	case lf.f.StopAfter > 0 && !lf.fired && lf.rx+n >= lf.f.StopAfter:
		b = b[:lf.f.StopAfter-lf.rx] // the bytes up to the stop still arrive
		lf.fired, lf.stopped = true, true
	}
	lf.rx += n
	if lf.onRx != nil {
		lf.onRx(lf.rx)
	}
	return b
}

// sent filters bytes on their way to the host.
func (lf *lineFault) sent(b []byte) []byte {
	if lf.f.AdapterSilent || lf.stopped {
		return nil
	}
	return lf.noise(b)
}

// halted is called when the unit is powered off or reset: a hung unit
// answers again after a reset.
func (lf *lineFault) halted() { lf.stopped = false }

// SetFaults injects f's line faults into the line (bit errors, drops, a
// unit that stops answering, a silent adapter, the wrong version at boot)
// and calls onRx, if set, with the count of bytes received so far after
// each chunk (the bench uses it to time a port flap). It replaces earlier
// faults; a zero Faults removes them.
func (l *Line) SetFaults(f Faults, onRx func(total int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f.Zero() && onRx == nil {
		l.fault = nil
		return
	}
	l.fault = &lineFault{f: f, rng: newFaultRand(f.Seed), onRx: onRx}
}

// AdapterSilent reports whether the line's adapter was made to pass
// nothing (Faults.AdapterSilent): the virtual bench's adapters answer a
// status request with it, as a wedged USB adapter fails its control
// requests.
func (l *Line) AdapterSilent() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fault != nil && l.fault.f.AdapterSilent
}

// appVersion returns the version the application prints: its image's, or
// the injected wrong one.
func (l *Line) appVersion(v string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fault != nil && l.fault.f.WrongVersion != "" {
		return l.fault.f.WrongVersion
	}
	return v
}

// FlashFaults are a flash's injected failures; see Faults.
type FlashFaults struct {
	mu         sync.Mutex
	badPage    *Region
	brownout   int64  // bytes left before the power cut; 0 after it fired
	cut        func() // cuts the power (asynchronously)
	slowErase  time.Duration
	programmed int64
}

// SetFaults injects f's flash faults (a page that fails to program, a
// brownout after some bytes programmed, a slow erase); cut is called, from
// the programming goroutine, when the brownout fires, and must not block.
// A zero Faults removes them.
func (f *Flash) SetFaults(flt Faults, cut func()) {
	ff := &FlashFaults{brownout: flt.Brownout, cut: cut, slowErase: flt.SlowErase}
	if flt.HasBadPage {
		if i, ok := f.UnitAt(flt.BadPage); ok {
			r, _ := f.Unit(i)
			ff.badPage = &r
		}
	}
	f.mu.Lock()
	f.faults = ff
	if flt.Brownout == 0 && flt.SlowErase == 0 && ff.badPage == nil {
		f.faults = nil
	}
	f.mu.Unlock()
}

// program filters a program of b at addr (the flash's lock held): it
// returns the bytes to program, which leave a bad page as it was (0xFF
// programs nothing) and stop at a brownout, and whether the power goes.
func (ff *FlashFaults) program(addr uint32, b []byte) ([]byte, bool) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	out := b
	if ff.badPage != nil && ff.badPage.Overlaps(Region{addr, uint32(len(b))}) {
		out = append([]byte(nil), b...)
		for i := range out {
			if ff.badPage.Contains(addr + uint32(i)) {
				out[i] = 0xFF
			}
		}
	}
	cut := false
	if ff.brownout > 0 {
		if int64(len(out)) >= ff.brownout {
			out = out[:ff.brownout]
			ff.brownout, cut = 0, true
		} else {
			ff.brownout -= int64(len(out))
		}
	}
	ff.programmed += int64(len(out))
	return out, cut
}

// erasing is called before an erase, outside the flash's lock.
func (ff *FlashFaults) erasing() {
	ff.mu.Lock()
	d := ff.slowErase
	ff.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}
