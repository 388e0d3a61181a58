package gpio_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/gpio/gpiosim"
)

// serveBank serves a simulated bank's lines on a Unix socket, as `unbrick
// sim --bench` does, and returns a Remote dialling it.
func serveBank(t *testing.T, bank *gpiosim.Bank) *gpio.Remote {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lines.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- gpio.ServeLines(ctx, l, func(name string) (pgpio.PinIO, error) {
			if p := bank.Lookup(name); p != nil {
				return p, nil
			}
			return nil, &unknownLine{name}
		})
	}()
	r := &gpio.Remote{Socket: sock}
	t.Cleanup(func() {
		r.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeLines() = %v", err)
		}
	})
	return r
}

type unknownLine struct{ name string }

func (e *unknownLine) Error() string { return "no line " + e.name + " on this bench" }

// TestRemoteDrivesTheOtherSide: a line opened through the socket drives
// the served pin, and the unit behind it hears the change before Set
// returns.
func TestRemoteDrivesTheOtherSide(t *testing.T) {
	bank := gpiosim.NewBank()
	power := bank.MustPin("sim:slot1.power")
	var heard []pgpio.Level
	power.Listen(func(l pgpio.Level) { heard = append(heard, l) })
	r := serveBank(t, bank)
	var reg gpio.Registry
	r.Register(&reg, gpiosim.Prefix)

	pin, err := reg.Open("sim:slot1.power")
	if err != nil {
		t.Fatalf("Open(sim:slot1.power) = %v", err)
	}
	line := gpio.NewLine("sim:slot1.power", gpio.Power, pgpio.High, pin)
	if err := line.Set(true); err != nil {
		t.Fatalf("Set(true) = %v", err)
	}
	if got := power.Level(); got != pgpio.High {
		t.Errorf("served pin after Set(true) = %v, want High", got)
	}
	if len(heard) != 1 || heard[0] != pgpio.High {
		t.Errorf("the unit heard %v when Set(true) returned, want [High]", heard)
	}
	if got := pin.Read(); got != pgpio.High {
		t.Errorf("Read() = %v, want High", got)
	}
	if err := line.Halt(); err != nil {
		t.Fatalf("Halt() = %v", err)
	}
	if got := power.Level(); got != pgpio.Low {
		t.Errorf("served pin after Halt() = %v, want Low", got)
	}
	if err := pin.In(pgpio.Float, pgpio.NoEdge); err != nil {
		t.Fatalf("In() = %v", err)
	}
	if got := power.Func(); got != pgpio.IN {
		t.Errorf("served pin after In() is %v, want IN", got)
	}
}

func TestRemoteErrors(t *testing.T) {
	bank := gpiosim.NewBank()
	bank.MustPin("sim:slot1.reset")
	r := serveBank(t, bank)
	tests := []struct {
		name string
		want string
	}{
		{"sim:slot9.power", "no line sim:slot9.power on this bench"},
		{"sim:slot1 power", "without spaces"},
		{"", "non-empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Open(tt.name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
	dead := &gpio.Remote{Socket: filepath.Join(t.TempDir(), "none.sock")}
	if _, err := dead.Open("sim:slot1.reset"); err == nil || !strings.Contains(err.Error(), "unbrick sim --bench") {
		t.Errorf("Open() with nothing serving = %v, want an error saying what to start", err)
	}
}

// TestRemoteConcurrent: slots switch their lines at once, each on its own
// connection, and every change lands.
func TestRemoteConcurrent(t *testing.T) {
	bank := gpiosim.NewBank()
	const n = 8
	for i := range n {
		bank.MustPin(fmt.Sprintf("sim:slot%d.power", i))
	}
	r := serveBank(t, bank)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := r.Open(fmt.Sprintf("sim:slot%d.power", i))
			if err != nil {
				errs <- err
				return
			}
			for k := range 50 {
				if err := p.Out(pgpio.Level(k%2 == 0)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Out() = %v", err)
	}
	for i := range n {
		if got := bank.Lookup(fmt.Sprintf("sim:slot%d.power", i)).Level(); got != pgpio.Low {
			t.Errorf("slot %d power after 50 changes = %v, want Low", i, got)
		}
	}
}
