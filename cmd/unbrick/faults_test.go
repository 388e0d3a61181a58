package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimFaultsFlag: `unbrick sim --faults` refuses a bad spec with what is
// wrong, before any link appears. (What the faults do is tested through
// simbench.Arm, which the flag calls, in station's TestInjectedFaults.)
func TestSimFaultsFlag(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyUSB0")
	err := run(t.Context(), []string{"sim", "--model", "stm32f103", "--link", link, "--faults", "ber=1e-3,jitter=2"}, &syncBuffer{}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), `unknown fault "jitter"`) {
		t.Fatalf("sim --faults with an unknown fault = %v, want an error naming it", err)
	}
	if _, err := os.Lstat(link); err == nil {
		t.Error("the link stayed after the refusal")
	}
}
