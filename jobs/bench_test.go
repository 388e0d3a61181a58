package jobs

import (
	"bytes"
	"context"
	"fmt"
	"github.com/unbrick/unbrick/step"
	"regexp"
	"sync"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/avrsim"
)

// memRecorder keeps the record in memory for the runner's unit tests; the
// station's tests hold the runner against the real SQLite store.
type memRecorder struct {
	mu      sync.Mutex
	next    int64
	steps   []string
	ends    []string // each step's end: outcome and detail
	console bytes.Buffer
	units   []UnitInfo
	backups map[string][]byte
	results []*Result
	pool    int
}

func (m *memRecorder) StartAttempt(ctx context.Context, a AttemptInfo) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	return m.next, nil
}

func (m *memRecorder) UnitIdentified(ctx context.Context, attempt int64, u UnitInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.units = append(m.units, u)
	return nil
}

func (m *memRecorder) StartStep(ctx context.Context, attempt int64, seq int, name, strategy string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.steps = append(m.steps, strategy+"/"+name)
	return nil
}

func (m *memRecorder) EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ends = append(m.ends, outcome+": "+detail)
	return nil
}

func (m *memRecorder) Console(ctx context.Context, attempt int64, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.console.Write(b)
	return nil
}

func (m *memRecorder) SaveBackup(ctx context.Context, attempt int64, name string, addr uint32, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backups == nil {
		m.backups = map[string][]byte{}
	}
	m.backups[name] = append([]byte(nil), data...)
	return nil
}

func (m *memRecorder) Allocate(ctx context.Context, attempt int64, pool string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pool++
	return fmt.Sprintf("SN%06d", m.pool), nil
}

func (m *memRecorder) Finish(ctx context.Context, r *Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results = append(m.results, r)
	return nil
}

// unplugger is a port on an in-memory link whose Close leaves the link up
// (the station closes and reopens a slot's port between jobs).
type pipePort struct {
	*sim.PipeHost
}

func (pipePort) Close() error { return nil }

// avrBench is one ATmega328P unit wired to a slot by simulated lines.
type avrBench struct {
	bank   *gpiosim.Bank
	model  *avrsim.Model
	dev    *sim.Device
	host   *sim.PipeHost
	devEnd *sim.PipeDevice
	slot   *Slot
}

func newAVRBench(t *testing.T, image []byte) *avrBench {
	t.Helper()
	b := &avrBench{bank: gpiosim.NewBank()}
	m, err := avrsim.New("atmega328p", avrsim.Options{Board: "uno-r3", ID: "LABEL-0042", Image: image})
	if err != nil {
		t.Fatal(err)
	}
	b.model = m
	b.host, b.devEnd = sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Baud: 115200})
	line.Attach(b.devEnd)
	b.dev = sim.NewDevice("avr", m, line)
	power := b.bank.MustPin("sim:slot1.power")
	reset := b.bank.MustPin("sim:slot1.reset")
	power.Listen(func(l pgpio.Level) { b.dev.SetPower(l == pgpio.High) })
	reset.Listen(func(l pgpio.Level) { b.dev.SetReset(l == pgpio.Low) })
	b.slot = &Slot{Num: 1, Name: "slot 1",
		Lines: map[gpio.Role]*gpio.Line{
			gpio.Power: gpio.NewLine("sim:slot1.power", gpio.Power, pgpio.High, power),
			gpio.Reset: gpio.NewLine("sim:slot1.reset", gpio.Reset, pgpio.Low, reset),
		},
		Open: func(ctx context.Context, m Mode) (Port, error) {
			b.host.SetBaud(m.Baud)
			return pipePort{b.host}, nil
		},
	}
	t.Cleanup(b.dev.Close)
	return b
}

func avrPlan(t *testing.T, version string) *Plan {
	t.Helper()
	img, err := avrsim.AppImage("atmega328p", version, "uno-r3", 4096)
	if err != nil {
		t.Fatal(err)
	}
	return &Plan{
		Recipe: "uno-r3", Version: 1, Protocol: "avr", Released: true, Chip: 0x1E950F, Revisions: []string{"R3"},
		Port: Mode{Baud: 115200}, ConsoleBaud: 115200,
		Flash:  Region{Start: 0, Size: 0x7E00},
		Images: map[string]*Image{"app": {Name: "app", Version: version, Addr: 0, Data: img, Revisions: []string{"R3"}}},
		Entry:  []Action{{Kind: ActSet, Role: gpio.Power, On: true}, {Kind: ActPulse, Role: gpio.Reset, Wait: 10 * time.Millisecond}},
		Strategies: []Strategy{{Name: "reflash", Steps: []Step{
			{Kind: step.KindEnter},
			{Kind: step.KindWrite, Image: "app"},
			{Kind: step.KindVerify, Image: "app"},
			{Kind: step.KindBoot},
			{Kind: step.KindExpect, Expect: regexp.MustCompile(regexp.QuoteMeta("firmware v" + version)), Within: 5 * time.Second},
		}}},
		Diagnose: []Diagnosis{{Pattern: regexp.MustCompile(`bad image checksum|no application image`), Class: "image-corrupt"}},
		Validate: Validation{Version: regexp.MustCompile(`firmware v(\S+)`), Checks: []Step{
			{Kind: step.KindSend, Send: "status\r", Expect: regexp.MustCompile(`OK`), Within: 2 * time.Second}}},
	}
}

func newRunner(rec Recorder, bus *Bus) *Runner {
	return &Runner{Bus: bus, Rec: rec, Drivers: map[string]Driver{"avr": AVR{}}}
}
