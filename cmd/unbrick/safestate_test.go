package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/fixtures"
	"github.com/unbrick/unbrick/gpio/gpiosim"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
)

// released returns, for each simulated line of a demo bench of the given
// kinds (in turn, one unit per slot), the state the line shows when it is
// not asserted, wired as station.SimFixtures wires it.
func released(kinds []string, units int) map[string]string {
	level := func(activeHigh bool) string {
		if activeHigh {
			return "low"
		}
		return "high"
	}
	out := map[string]string{}
	ks := map[string]*simbench.Kind{}
	for _, k := range simbench.Kinds() {
		ks[k.Name] = k
	}
	for n := 1; n <= units; n++ {
		k := ks[kinds[(n-1)%len(kinds)]]
		p, b, r := simbench.LineNames(n)
		out[p] = level(true)
		if k.HasStrap {
			out[b] = level(k.Strap == pgpio.High)
		}
		out[r] = level(k.ResetActive == pgpio.High)
	}
	return out
}

// checkReleased fails unless the published lines show every line in want
// at its released state.
func checkReleased(t *testing.T, file string, want map[string]string) {
	t.Helper()
	got, err := gpiosim.ReadPublished(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %q after the stop, want %q (released)", name, got[name], w)
		}
	}
}

// poweredNow reports whether the published lines show a power line on.
func poweredNow(file string) bool {
	got, err := gpiosim.ReadPublished(file)
	if err != nil {
		return false
	}
	for name, s := range got {
		if strings.HasSuffix(name, ".power") && s == "high" {
			return true
		}
	}
	return false
}

// TestSafeStateOnTheLines stops a demo station mid-flash by SIGTERM, by
// Ctrl-C (SIGINT) and by a panic in its main goroutine, and reads the
// simulated lines it published from outside the process: every power line
// off, every strap and reset released.
func TestSafeStateOnTheLines(t *testing.T) {
	bin := unbrickBinary(t)
	kinds := []string{"stm32f407", "esp32"}
	tests := []struct {
		name   string
		signal os.Signal
		env    string
		exit   int
	}{
		{name: "SIGTERM", signal: syscall.SIGTERM},
		{name: "Ctrl-C", signal: syscall.SIGINT},
		{name: "panic", env: panicStepEnv + "=write app", exit: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			lines := filepath.Join(dir, "lines")
			var out bytes.Buffer
			cmd := exec.Command(bin, "demo", "--units", "2", "--kinds", strings.Join(kinds, ","), "--data", dir,
				"--listen", "", "--exit", "--sim-lines", lines)
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.Env = os.Environ()
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			if tt.signal != nil {
				// The lines file is live: a unit is switched on for its job.
				// (The panic comes by itself once a unit is being written,
				// so it was switched on then.)
				waitFor(t, "a unit switched on", 3*time.Minute, func() bool {
					select {
					case err := <-done:
						t.Fatalf("the demo ended early: %v\n%s", err, out.String())
					default:
					}
					return poweredNow(lines)
				})
				// Mid-flash, not at the entry: wait for a write.
				waitFor(t, "a unit being written", 3*time.Minute, func() bool {
					if _, err := os.Stat(filepath.Join(dir, "unbrick.db")); err != nil {
						return false
					}
					for _, a := range attempts(t, dir) {
						if a.LastStep == "write app" {
							return true
						}
					}
					return false
				})
				cmd.Process.Signal(tt.signal)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("the demo did not stop\n%s", out.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.exit {
				t.Errorf("exit status %d, want %d\n%s", code, tt.exit, out.String())
			}
			if tt.exit == 2 && !strings.Contains(out.String(), "injected panic") {
				t.Errorf("the demo did not die of the injected panic:\n%s", out.String())
			}
			checkReleased(t, lines, released(kinds, 2))
		})
	}
}

// TestServeShutdownOnTheLines: `unbrick serve` stopped while a job drives
// its unit leaves every line of its bench file released, as its published
// simulated lines show.
func TestServeShutdownOnTheLines(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	benchFile := filepath.Join(dir, "bench.yaml")
	lines := filepath.Join(dir, "lines")
	os.WriteFile(benchFile, []byte(serveBench), 0o644)
	os.MkdirAll(filepath.Join(data, "ports"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--bench", benchFile, "--recipes", "../../testdata/recipes", "--key", testKey,
			"--data", data, "--listen", "127.0.0.1:0", "--sim-lines", lines}, &stdout, &stderr)
	}()
	waitFor(t, "serve to start", time.Minute, func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "the page is at")
	})
	// A unit in slot 1 (auto), waiting in its bootloader: the station's
	// sim lines drive nothing outside it.
	k := simbench.STM32F103()
	m, err := k.New(simbench.Spec{Kind: k.Name, Board: "sensor-b", State: simbench.Bricked, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	line := sim.NewLine(sim.LineConfig{BitsPerByte: 11})
	dev := sim.NewDevice("unit", m, line)
	defer dev.Close()
	dev.SetBoot(true)
	dev.SetPower(true)
	pt, err := sim.OpenPTY(filepath.Join(data, "ports", "slot1"))
	if err != nil {
		t.Fatal(err)
	}
	line.Attach(pt)
	waitFor(t, "slot 1's job to switch its unit on", 2*time.Minute, func() bool { return poweredNow(lines) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	b, err := fixtures.Load(benchFile, map[string]string{"data": data})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, s := range b.Slots {
		for _, l := range s.Lines {
			want[l.Name] = map[bool]string{true: "low", false: "high"}[l.ActiveHigh]
		}
	}
	if len(want) != 6 {
		t.Fatalf("bench file lines = %v, want 6", want)
	}
	checkReleased(t, lines, want)
}
