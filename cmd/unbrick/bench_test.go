package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unbrick/unbrick/internal/peertest"
)

// TestBenchJSON runs `unbrick bench` on two unpaced units, with every peer
// tool, and checks that the JSON has every figure, each sane. Unpaced, the
// figures say nothing about speed: no target is checked here (benchmarks
// only, never timed tests).
func TestBenchJSON(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "stm32flash", Package: "stm32flash"}, peertest.Tool{Name: "avrdude", Package: "avrdude"},
		peertest.Tool{Name: "sb", Package: "lrzsz"})
	peertest.NeedEsptoolJS(t)
	bin := unbrickBinary(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.json")
	cmd := exec.Command(bin, "bench", "--units", "2", "--fast", "--json", out, "--dir", filepath.Join(dir, "work"), "--pprof", filepath.Join(dir, "prof"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("unbrick bench = %v\n%s", err, log.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("bench.json: %v\n%s", err, b)
	}
	for _, k := range []string{"scale_ratio", "mix_wall_s", "slowest_single_s", "peak_rss_mb", "mix_rss_mb", "cpu_seconds",
		"event_p50_ms", "event_p99_ms", "events", "db_rows_per_s", "db_rows"} {
		v, ok := doc[k].(float64)
		if !ok || v <= 0 {
			t.Errorf("bench.json %s = %v, want a positive number", k, doc[k])
		}
	}
	if p := doc["passed"]; p != 2.0 {
		t.Errorf("bench.json passed = %v, want 2\n%s", p, log.String())
	}
	if c := doc["clients"]; c != 10.0 {
		t.Errorf("bench.json clients = %v, want 10", c)
	}
	if rss := doc["peak_rss_mb"].(float64); rss > 1024 {
		t.Errorf("bench.json peak_rss_mb = %v, want megabytes (below 1024)", rss)
	}
	for _, field := range []string{"link_efficiency", "vs_peer"} {
		m, _ := doc[field].(map[string]any)
		for _, p := range []string{"stm32", "avr", "esprom", "uboot"} {
			if v, ok := m[p].(float64); !ok || v <= 0 {
				t.Errorf("bench.json %s[%s] = %v, want a positive number\n%s", field, p, m[p], log.String())
			}
		}
	}
	// The ESP peer also ran at unbrick's rate, on the same unit reset
	// into its ROM.
	if same, _ := doc["vs_peer_same_baud"].(map[string]any); !(same["esprom"] != nil && same["esprom"].(float64) > 0) {
		t.Errorf("bench.json vs_peer_same_baud[esprom] = %v, want a positive number\n%s", same["esprom"], log.String())
	}
	// The side-by-side on the image half 0xFF, STM32 and AVR only.
	half, _ := doc["vs_peer_half"].(map[string]any)
	for _, p := range []string{"stm32", "avr"} {
		if v, ok := half[p].(float64); !ok || v <= 0 {
			t.Errorf("bench.json vs_peer_half[%s] = %v, want a positive number\n%s", p, half[p], log.String())
		}
	}
	if len(half) != 2 {
		t.Errorf("bench.json vs_peer_half = %v, want stm32 and avr only", half)
	}
	peers, _ := doc["peers"].([]any)
	for _, pr := range peers {
		p, _ := pr.(map[string]any)
		if p["variant"] == "half" && !strings.Contains(fmt.Sprint(p["comparison"]), "0xFF") {
			t.Errorf("bench.json peers: the %v side-by-side on the half-0xFF image says it compares %q, want what each side does with the blank half", p["protocol"], p["comparison"])
		}
	}
	st, _ := doc["station"].(map[string]any)
	if s, _ := st["singles"].([]any); len(s) != 2 {
		t.Errorf("bench.json station.singles has %d jobs, want 2 (one per kind and state of the mix)", len(s))
	}
	for _, f := range []string{"cpu.pprof", "heap.pprof"} {
		if fi, err := os.Stat(filepath.Join(dir, "prof", f)); err != nil || fi.Size() == 0 {
			t.Errorf("--pprof wrote no %s: %v", f, err)
		}
	}
}

func TestHalfBlank(t *testing.T) {
	img := bytes.Repeat([]byte{0x5A}, 8<<10)
	got := halfBlank(img)
	for i, b := range got {
		want := byte(0x5A)
		if i >= 2<<10 && i < 6<<10 {
			want = 0xFF
		}
		if b != want {
			t.Fatalf("halfBlank(8 KiB of 0x5A)[0x%04X] = 0x%02X, want 0x%02X", i, b, want)
		}
	}
	if img[4<<10] != 0x5A {
		t.Errorf("halfBlank changed its argument")
	}
}
