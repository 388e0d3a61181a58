package serialport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Latency is what Open found and did to an adapter's latency timer: how long
// an FTDI chip holds received bytes before sending a short USB packet. At
// the default 16 ms every stop-and-wait exchange of a bootloader waits that
// long; at 1 ms it does not. See FTDI AN232B-04,
// https://ftdichip.com/wp-content/uploads/2020/08/AN232B-04_DataLatencyFlow.pdf.
type Latency struct {
	// File is the sysfs attribute, or "" when the adapter has none (not
	// an FTDI chip, or a pseudo-terminal).
	File string
	// Before and After are the timer's values; After is Before when it
	// was left alone.
	Before, After time.Duration
	// Note says what was done, or why not, in words; "" when there is no
	// timer.
	Note string
}

// latencyFile returns the sysfs latency_timer attribute of a tty device:
// the ftdi_sio driver puts it on the usb-serial port device that
// /sys/class/tty/<name>/device links to.
func (o *Opener) latencyFile(dev string) string {
	return filepath.Join(o.sysRoot(), "class", "tty", filepath.Base(dev), "device", "latency_timer")
}

func readMS(file string) (time.Duration, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s holds %q, not a number of milliseconds", file, strings.TrimSpace(string(b)))
	}
	return time.Duration(n) * time.Millisecond, nil
}

// tuneLatency sets the latency timer of the adapter behind dev, if it has
// one and it is above the Opener's target.
func (o *Opener) tuneLatency(dev string) Latency {
	file := o.latencyFile(dev)
	before, err := readMS(file)
	if errors.Is(err, os.ErrNotExist) {
		return Latency{}
	}
	name := filepath.Base(dev)
	if err != nil {
		return Latency{File: file, Note: fmt.Sprintf("cannot read the latency timer of %s: %v", name, err)}
	}
	l := Latency{File: file, Before: before, After: before}
	want := o.Latency
	if want == 0 {
		want = time.Millisecond
	}
	if want < 0 || before <= want {
		l.Note = fmt.Sprintf("latency timer of %s is %v", name, before)
		return l
	}
	ms := max(1, int((want+time.Millisecond-1)/time.Millisecond))
	if err := os.WriteFile(file, []byte(strconv.Itoa(ms)+"\n"), 0); err != nil {
		l.Note = fmt.Sprintf("latency timer of %s is %v and could not be set to %d ms (%v): every exchange waits that long; "+
			"give the station write access with a udev rule (ATTR{latency_timer}=\"1\")", name, before, ms, err)
		return l
	}
	after, err := readMS(file)
	if err != nil {
		l.Note = fmt.Sprintf("set the latency timer of %s to %d ms but cannot read it back: %v", name, ms, err)
		return l
	}
	l.After = after
	l.Note = fmt.Sprintf("set the latency timer of %s from %v to %v", name, before, after)
	return l
}
