package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simbench"
)

// binary is the unbrick command built once for the tests that run it as a
// process (signals, third-party tools).
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func unbrickBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "unbrick-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "unbrick")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, out}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// waitFor polls until cond holds (a real process's effect), or fails.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond) // polling another process, not synchronising goroutines
	}
}

// TestSimForStm32flash runs `unbrick sim` as a process, points the real
// stm32flash at its link, and stops it with SIGTERM: it exits 0 and removes
// its link.
func TestSimForStm32flash(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "stm32flash", Package: "stm32flash"})
	bin := unbrickBinary(t)
	so := filepath.Join(t.TempDir(), "ptyparity.so")
	if out, err := exec.Command("cc", "-shared", "-fPIC", "-o", so, "../../sim/stm32sim/testdata/ptyparity.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("build the pty parity shim: %v\n%s", err, out)
	}
	env := append(os.Environ(), "LD_PRELOAD="+so)
	for _, tt := range []struct{ model, id string }{{"stm32f103", "0x0410"}, {"stm32f407", "0x0413"}} {
		t.Run(tt.model, func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "ttyUSB0")
			var out bytes.Buffer
			cmd := exec.Command(bin, "sim", "--model", tt.model, "--link", link, "--fast")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			waitFor(t, "the sim's link", 30*time.Second, func() bool { _, err := os.Lstat(link); return err == nil })
			var got []byte
			for try := 1; try <= 2; try++ { // stm32flash gives the ROM only 0.5 s: see stm32sim's interop test
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				// 8E1 as the ROM wants, through the shim that lets
				// stm32flash keep PARENB on a pty (the model refuses 8N1).
				sf := exec.CommandContext(ctx, "stm32flash", "-b", "115200", "-m", "8e1", link)
				sf.Env = env
				got, _ = sf.CombinedOutput()
				cancel()
				if bytes.Contains(got, []byte("Device ID")) {
					break
				}
			}
			if !bytes.Contains(got, []byte("Device ID    : "+tt.id)) {
				t.Fatalf("stm32flash against `unbrick sim --model %s`:\n%s\nsim said:\n%s", tt.model, got, out.String())
			}
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("unbrick sim after SIGTERM: %v\n%s", err, out.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("unbrick sim did not stop within 30 s of SIGTERM")
			}
			if _, err := os.Lstat(link); err == nil {
				t.Error("unbrick sim left its link behind")
			}
		})
	}
}

// TestFlashEachFamily writes each family's image with `unbrick flash` to a
// model in its bootloader, and the model then boots the new version.
func TestFlashEachFamily(t *testing.T) {
	for _, k := range simbench.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			dir := t.TempDir()
			board := simbench.DemoBoard(k.Name)
			m, err := k.New(simbench.Spec{Kind: k.Name, Board: board, State: simbench.Bricked, Version: "1.0.0", Seed: 5,
				Options: map[string]string{"stay": "true"}})
			if err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "tty")
			pt, err := sim.OpenPTY(link)
			if err != nil {
				t.Fatal(err)
			}
			cfg := k.Line
			cfg.Fast = true
			line := sim.NewLine(cfg)
			line.Attach(pt)
			var console bytes.Buffer
			var mu sync.Mutex
			line.Tap(func(dir byte, b []byte) {
				if dir == '>' {
					mu.Lock()
					console.Write(b)
					mu.Unlock()
				}
			})
			dev := sim.NewDevice(k.Name, m, line)
			defer dev.Close()
			// Hold the port at the console's rate between runs, as a station does.
			if p, err := serial.Open(link, &serial.Mode{BaudRate: 115200}); err == nil {
				defer p.Close()
			}
			if k.HasStrap {
				dev.SetBoot(true)
			}
			dev.SetPower(true)
			if !k.HasStrap {
				dev.SetReset(true)
				dev.SetReset(false)
			}
			img, addr, err := k.Image("3.1.4", board)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "app.bin")
			if err := os.WriteFile(file, img, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"flash", "--port", link, "--protocol", k.Protocol, "--address", fmt.Sprintf("0x%X", addr), file}
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("unbrick %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
			}
			said := "wrote and verified"
			if k.Name == "esp8266" {
				said = "written, not verified (the ESP8266 ROM cannot read back)"
			}
			if !strings.Contains(stdout.String(), said) {
				t.Errorf("flash output lacks %q:\n%s", said, stdout.String())
			}
			// The unit now boots the new version (the flash started it).
			want := board + " firmware v3.1.4"
			waitFor(t, "the banner "+want, 30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return strings.Contains(console.String(), want)
			})
		})
	}
}

// TestFlashRefusesBadInput: clear errors, non-zero status.
func TestFlashRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "app.bin")
	os.WriteFile(img, []byte{1, 2, 3, 4}, 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"flash", "--protocol", "stm32", img}, "--port is required"},
		{[]string{"flash", "--port", "/dev/null", "--protocol", "pic", img}, `--protocol "pic": unknown`},
		{[]string{"flash", "--port", filepath.Join(dir, "nope"), "--protocol", "stm32", img}, "nope"},
		{[]string{"flash", "--port", "/dev/null", "--protocol", "stm32", filepath.Join(dir, "missing.bin")}, "missing.bin"},
		{[]string{"bogus"}, `unknown command "bogus"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("unbrick %s = %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// TestSimForAvrdude points the real avrdude at `unbrick sim --model
// atmega328p`: it reads the part's signature through optiboot.
func TestSimForAvrdude(t *testing.T) {
	peertest.Need(t, peertest.Tool{Name: "avrdude", Package: "avrdude"})
	bin := unbrickBinary(t)
	link := filepath.Join(t.TempDir(), "ttyACM0")
	var out bytes.Buffer
	cmd := exec.Command(bin, "sim", "--model", "atmega328p", "--link", link, "--fast")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	waitFor(t, "the sim's link", 30*time.Second, func() bool { _, err := os.Lstat(link); return err == nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := exec.CommandContext(ctx, "avrdude", "-c", "arduino", "-p", "m328p", "-P", link, "-b", "115200").CombinedOutput()
	if err != nil || !bytes.Contains(got, []byte("0x1e950f")) {
		t.Fatalf("avrdude against `unbrick sim --model atmega328p`: %v\n%s\nsim said:\n%s", err, got, out.String())
	}
}
