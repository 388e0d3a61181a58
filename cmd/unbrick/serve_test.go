package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const serveBench = `bench: test
slots:
  - slot: 1
    port: {path: "{data}/ports/slot1"}
    lines: {power: sim:slot1.power, boot: sim:slot1.boot, reset: sim:slot1.reset}
    options: {auto: true, revision: B1, recipe: sensor-b-stm32f103}
  - slot: 2
    port: {path: "{data}/ports/slot2"}
    lines: {power: sim:slot2.power, boot: sim:slot2.boot, reset: sim:slot2.reset}
    options: {revision: B1}
`

// TestServe runs `unbrick serve` on a bench file: it serves the slots, and
// a unit plugged into an auto slot (its port appears) is noticed and its
// job starts by itself, identifying the unit. It stops cleanly.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	benchFile := filepath.Join(dir, "bench.yaml")
	os.WriteFile(benchFile, []byte(serveBench), 0o644)
	os.MkdirAll(filepath.Join(data, "ports"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--bench", benchFile, "--recipes", "../../testdata/recipes", "--key", testKey,
			"--data", data, "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	var addr string
	re := regexp.MustCompile(`http://([0-9.:]+)/`)
	waitFor(t, "the page's address", time.Minute, func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, stderr.String())
		default:
		}
		return false
	})
	tiles := func() map[int]map[string]any {
		resp, err := http.Get("http://" + addr + "/api/slots")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ts []map[string]any
		json.NewDecoder(resp.Body).Decode(&ts)
		out := map[int]map[string]any{}
		for _, tl := range ts {
			out[int(tl["slot"].(float64))] = tl
		}
		return out
	}
	if ts := tiles(); len(ts) != 2 || ts[1]["state"] != "empty" {
		t.Fatalf("tiles before any unit: %v", ts)
	}

	// Plug a unit into slot 1: an STM32F103 in its bootloader (the test's
	// sim lines drive nothing outside the station, so the unit waits there).
	k := simbench.STM32F103()
	m, err := k.New(simbench.Spec{Kind: k.Name, Board: "sensor-b", State: simbench.Bricked, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	line := sim.NewLine(sim.LineConfig{Fast: true, BitsPerByte: 11})
	dev := sim.NewDevice("unit", m, line)
	defer dev.Close()
	dev.SetBoot(true)
	dev.SetPower(true)
	pt, err := sim.OpenPTY(filepath.Join(data, "ports", "slot1"))
	if err != nil {
		t.Fatal(err)
	}
	line.Attach(pt)
	var serial string
	waitFor(t, "slot 1's job to identify the plugged unit", time.Minute, func() bool {
		tl := tiles()[1]
		serial, _ = tl["serial"].(string)
		return tl["state"] != "empty" && serial != ""
	})
	if want := fmt.Sprint(m.(interface{ Serial() string }).Serial()); serial != want {
		t.Errorf("slot 1 serial = %q, want the unit's unique ID %q", serial, want)
	}
	if tl := tiles()[2]; tl["state"] != "empty" {
		t.Errorf("slot 2 = %v, want empty", tl)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stdout.String(), "every slot is switched off") {
		t.Errorf("stdout: %s", stdout.String())
	}
}

// TestServeBadBench: a bench file naming a missing recipe fails with the
// file:line:col of the slot.
func TestServeBadBench(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bench.yaml")
	os.WriteFile(f, []byte(strings.Replace(serveBench, "recipe: sensor-b-stm32f103", "recipe: nope", 1)), 0o644)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--bench", f, "--recipes", "../../testdata/recipes", "--key", testKey, "--data", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), f+":3:5: slot 1 names recipe \"nope\"") {
		t.Errorf("serve with a missing recipe = %v", err)
	}
}
