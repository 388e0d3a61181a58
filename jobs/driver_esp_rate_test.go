package jobs

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/unbrick/unbrick/bootloader/esprom"
)

// clampPort is an adapter that cannot carry the rates above max: it takes
// them without complaint, but long packets above midRate lose their tail
// (a FIFO that overruns), and above max the link garbles entirely (the
// adapter stays at max).
type clampPort struct {
	pipePort
	max, midRate int
	rate         int
}

func (p *clampPort) SetBaud(b int) error {
	p.rate = b
	return p.PipeHost.SetBaud(min(b, p.max))
}

func (p *clampPort) Write(b []byte) (int, error) {
	if p.rate > p.midRate && len(b) > 200 {
		p.PipeHost.Write(b[:len(b)/2])
		return len(b), nil
	}
	return p.PipeHost.Write(b)
}

// TestESPRateFallback: the link goes to the recipe's rate (921600 by
// default) when it carries it, and otherwise steps down one standard rate
// at a time, at connect (a rate the adapter cannot carry at all) or while
// writing (a rate that carries short packets but not the data blocks); the
// job's log says the rate used.
func TestESPRateFallback(t *testing.T) {
	tests := []struct {
		name         string
		max, midRate int
		want         []string
	}{
		{"921600 carries", 921600, 921600, []string{"link at 921600 baud"}},
		{"adapter tops out at 460800", 460800, 921600, []string{"the link failed at 921600 baud", "link at 460800 baud"}},
		{"long packets fail above 230400", 921600, 230400,
			[]string{"link at 921600 baud", "the link failed at 921600 baud while writing", "link at 460800 baud", "the link failed at 460800 baud while writing", "link at 230400 baud"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				old := espImage(t, "esp32", "1.0.0")
				for i := len(old) / 2; i < len(old); i++ {
					old[i] = 0xFF
				}
				b := newESPBench(t, "esp32", old, false)
				port := &clampPort{pipePort: pipePort{b.host}, max: tt.max, midRate: tt.midRate}
				b.slot.Open = func(ctx context.Context, m Mode) (Port, error) {
					port.SetBaud(m.Baud)
					return port, nil
				}
				p := espPlan(t, "esp32", "2.1.0")
				bus := &Bus{}
				sub := bus.Subscribe(4096)
				rec := &detailRecorder{memRecorder: &memRecorder{}}
				r := espRunner(rec)
				r.Bus = bus
				res := r.Run(t.Context(), Job{Slot: b.slot, Plan: p, Revision: "A"})
				if res.Outcome != OutcomePassed {
					t.Fatalf("Run() = %s: %v", res.Outcome, res.Failure)
				}
				var logs []string
			drain:
				for {
					select {
					case e := <-sub.C:
						if e.Kind == KindLog && (strings.Contains(e.Text, "link at") || strings.Contains(e.Text, "link failed")) {
							logs = append(logs, e.Text)
						}
					default:
						break drain
					}
				}
				if len(logs) != len(tt.want) {
					t.Fatalf("the job logged %q, want %d notes %q", logs, len(tt.want), tt.want)
				}
				for i, w := range tt.want {
					if !strings.HasPrefix(logs[i], w) {
						t.Errorf("note %d = %q, want it to start %q", i, logs[i], w)
					}
				}
				// The attempt's record says the rate used, in the steps'
				// details.
				last := tt.want[len(tt.want)-1]
				if !strings.Contains(strings.Join(rec.details, "\n"), last) {
					t.Errorf("the steps' records say %q, want %q among them", rec.details, last)
				}
			})
		})
	}
}

// detailRecorder keeps each step's recorded detail.
type detailRecorder struct {
	*memRecorder
	details []string
}

func (d *detailRecorder) EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.details = append(d.details, detail)
	return nil
}

// ratePort records the rate the host side runs at when each request goes
// out, by opcode.
type ratePort struct {
	pipePort
	rate int
	sent map[byte][]int
}

func (p *ratePort) SetBaud(b int) error {
	p.rate = b
	return p.PipeHost.SetBaud(b)
}

func (p *ratePort) Write(b []byte) (int, error) {
	// A request's SLIP frame: C0, direction 00, the opcode.
	if len(b) > 2 && b[0] == esprom.SLIPEnd && b[1] == 0 {
		p.sent[b[2]] = append(p.sent[b[2]], p.rate)
	}
	return p.PipeHost.Write(b)
}

// TestESPAttachesAtTheFastRate: the link goes to its raised rate right
// after SYNC and the chip's identification; SPI_ATTACH, RDID (WRITE_REG
// to the SPI controller) and SPI_SET_PARAMS run at it, not at the rate
// the ROM synced at.
func TestESPAttachesAtTheFastRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newESPBench(t, "esp32", espImage(t, "esp32", "1.0.0"), false)
		port := &ratePort{pipePort: pipePort{b.host}, sent: map[byte][]int{}}
		b.slot.Open = func(ctx context.Context, m Mode) (Port, error) {
			port.SetBaud(m.Baud)
			return port, nil
		}
		res := espRunner(&memRecorder{}).Run(t.Context(), Job{Slot: b.slot, Plan: espPlan(t, "esp32", "2.1.0"), Revision: "A"})
		if res.Outcome != OutcomePassed {
			t.Fatalf("Run() = %s: %v", res.Outcome, res.Failure)
		}
		if got := port.sent[esprom.OpChangeBaudrate]; len(got) != 1 || got[0] != 115200 {
			t.Fatalf("CHANGE_BAUDRATE sent at %v, want once at 115200", got)
		}
		for _, op := range []byte{esprom.OpSPIAttach, esprom.OpWriteReg, esprom.OpSPISetParams} {
			got := port.sent[op]
			if len(got) == 0 {
				t.Errorf("%s never sent", esprom.OpName(op))
			}
			for _, r := range got {
				if r != DefaultESPFlashBaud {
					t.Errorf("%s sent at %v, want every one at %d", esprom.OpName(op), got, DefaultESPFlashBaud)
					break
				}
			}
		}
	})
}
