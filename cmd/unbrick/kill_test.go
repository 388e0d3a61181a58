package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unbrick/unbrick/db"
)

// attempts reads the record as another process sees it.
func attempts(t *testing.T, dir string) []db.Attempt {
	t.Helper()
	s, err := db.Open(filepath.Join(dir, "unbrick.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	as, err := s.Attempts(context.Background(), db.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// TestKilledMidFlash kills the station with SIGKILL while units are being
// written, after at least one finished, and starts it again: every
// unfinished attempt is marked interrupted with the last step it reached,
// no finished attempt is lost, and the database passes integrity_check.
func TestKilledMidFlash(t *testing.T) {
	bin := unbrickBinary(t)
	dir := t.TempDir()
	var out bytes.Buffer
	// AVR units finish in about 5 s at 115200, STM32F407 units take longer:
	// there is a moment with both finished and writing attempts.
	cmd := exec.Command(bin, "demo", "--units", "4", "--kinds", "atmega328p,stm32f407", "--data", dir, "--listen", "", "--exit")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var last []db.Attempt
	defer func() {
		if t.Failed() {
			for _, a := range last {
				t.Logf("attempt %d slot %d %s at %q", a.ID, a.Slot, a.Outcome, a.LastStep)
			}
			t.Logf("demo output:\n%s", out.String())
		}
	}()
	waitFor(t, "a finished attempt and one writing", 3*time.Minute, func() bool {
		if _, err := os.Stat(filepath.Join(dir, "unbrick.db")); err != nil {
			return false // let the station create it
		}
		as := attempts(t, dir)
		passed, writing := 0, 0
		for _, a := range as {
			switch {
			case a.Outcome == db.Passed:
				passed++
			case a.Outcome == db.Running && (strings.HasPrefix(a.LastStep, "erase") || a.LastStep == "write app" || a.LastStep == "verify app"):
				writing++
			}
		}
		last = as
		return passed >= 1 && writing >= 1
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// What the dead station left: read before anyone marks anything.
	left := attempts(t, dir)
	finished := map[int64]db.Outcome{}
	running := map[int64]string{}
	for _, a := range left {
		if a.Outcome == db.Running {
			running[a.ID] = a.LastStep
		} else {
			finished[a.ID] = a.Outcome
		}
	}
	if len(running) == 0 || len(finished) == 0 {
		t.Fatalf("after the kill: finished %v, running %v; want both", finished, running)
	}

	// Start again.
	out.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	again := exec.CommandContext(ctx, bin, "demo", "--units", "1", "--kinds", "atmega328p", "--data", dir, "--listen", "", "--exit", "--fast")
	again.Stdout, again.Stderr = &out, &out
	if err := again.Run(); err != nil {
		t.Fatalf("the station did not start again: %v\n%s", err, out.String())
	}
	s, err := db.Open(filepath.Join(dir, "unbrick.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("integrity_check after the kill: %v", err)
	}
	for id, last := range running {
		a, err := s.Attempt(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Outcome != db.Interrupted || a.LastStep != last || a.Reason == "" {
			t.Errorf("attempt %d left running at %q = %s at %q (%s), want interrupted there with a reason", id, last, a.Outcome, a.LastStep, a.Reason)
		}
	}
	for id, o := range finished {
		a, err := s.Attempt(context.Background(), id)
		if err != nil {
			t.Errorf("finished attempt %d lost: %v", id, err)
			continue
		}
		if a.Outcome != o {
			t.Errorf("finished attempt %d was %s, now %s", id, o, a.Outcome)
		}
	}
}

// TestSIGTERMMidFlash stops the station with SIGTERM while units are being
// written: it exits 0, having recorded the unfinished attempts as
// interrupted itself (nothing is left running) and powered every unit off.
func TestSIGTERMMidFlash(t *testing.T) {
	bin := unbrickBinary(t)
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := exec.Command(bin, "demo", "--units", "3", "--kinds", "stm32f407", "--data", dir, "--listen", "", "--exit")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
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
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("unbrick demo after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("unbrick demo did not stop within a minute of SIGTERM\n%s", out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("every unit is powered off")) {
		t.Errorf("output lacks the safe-state report:\n%s", out.String())
	}
	as := attempts(t, dir)
	interrupted := 0
	for _, a := range as {
		if a.Outcome == db.Running {
			t.Errorf("attempt %d left running after a clean stop", a.ID)
		}
		if a.Outcome == db.Interrupted {
			interrupted++
			if a.Finished.IsZero() || a.Fault != "station" {
				t.Errorf("attempt %d: interrupted without an end time or as the unit's fault: %+v", a.ID, a)
			}
		}
	}
	if interrupted == 0 {
		t.Errorf("no attempt recorded as interrupted: %+v", as)
	}
}
