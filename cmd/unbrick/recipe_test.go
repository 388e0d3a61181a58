package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testKey = "../../testdata/keys/unbrick-test.pub"

func TestRecipeCheck(t *testing.T) {
	good, _ := filepath.Glob("../../testdata/recipes/*.yaml")
	broken, _ := filepath.Glob("../../testdata/recipes/broken/*.yaml")
	if len(good) < 6 || len(broken) < 6 {
		t.Fatalf("found %d example and %d broken recipes", len(good), len(broken))
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"recipe", "check", "--key", testKey}, good...), &stdout, &stderr); err != nil {
		t.Fatalf("recipe check on the examples: %v\n%s", err, stderr.String())
	}
	for _, f := range broken {
		stdout.Reset()
		stderr.Reset()
		err := run(context.Background(), []string{"recipe", "check", "--key", testKey, f}, &stdout, &stderr)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Errorf("recipe check %s = %v, want exit status 1", f, err)
		}
		// Every error names file:line:col and a hint.
		first := strings.SplitN(stderr.String(), "\n", 2)[0]
		if !strings.HasPrefix(first, f+":") || !strings.Contains(first, "(hint: ") {
			t.Errorf("recipe check %s printed %q, want file:line:col: ... (hint: ...)", f, first)
		}
	}
}

// TestRecipeTest runs `unbrick recipe test` on the examples the station
// speaks, and on a recipe whose expectation the unit never meets.
func TestRecipeTest(t *testing.T) {
	for _, name := range []string{"stm32f103-sensor-b", "stm32f407-gateway-c", "atmega328p-uno-r3", "esp32-meter-e", "esp8266-plug-d", "uboot-hmi-a"} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			err := run(ctx, []string{"recipe", "test", "--key", testKey, "../../testdata/recipes/" + name + ".yaml"}, &stdout, &stderr)
			if err != nil {
				t.Fatalf("recipe test: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "2 of 2 units recovered") {
				t.Errorf("output:\n%s", stdout.String())
			}
		})
	}
	t.Run("wrong banner", func(t *testing.T) {
		dir := t.TempDir()
		b, err := os.ReadFile("../../testdata/recipes/stm32f103-sensor-b.yaml")
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(`expect: 'sensor-b firmware v1\.2\.0'`), []byte(`expect: 'sensor-b firmware v9\.9\.9'`), 1)
		f := filepath.Join(dir, "r.yaml")
		os.WriteFile(f, b, 0o644)
		os.Symlink(filepath.Join(mustAbs(t, "../../testdata/recipes"), "images"), filepath.Join(dir, "images"))
		var stdout, stderr bytes.Buffer
		err = run(context.Background(), []string{"recipe", "test", "--key", testKey, "--states", "bricked", f}, &stdout, &stderr)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Fatalf("recipe test of a recipe that cannot pass = %v, want exit status 1\n%s%s", err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "FAILED") || !strings.Contains(stdout.String(), "what to do:") {
			t.Errorf("output lacks the failure and the hint:\n%s", stdout.String())
		}
	})
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRecipeCheckOptions checks that driver options and serial settings
// are checked against what the driver declares, at their file:line:col
// with a hint.
func TestRecipeCheckOptions(t *testing.T) {
	src, err := os.ReadFile("../../testdata/recipes/esp32-meter-e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The options go at the end of the file, on line n+2.
	n := bytes.Count(src, []byte("\n"))
	for _, c := range []struct {
		name     string
		old, new string // a replacement in the file, or (old empty) options appended
		want     string // the error after the file's name
	}{
		{"bad value", "", "  flash_baud: fast\n",
			fmt.Sprintf(`:%d:15: option flash_baud "fast" is not a whole number`, n+2)},
		{"out of range", "", "  delta_chunk: 5000\n",
			fmt.Sprintf(`:%d:16: option delta_chunk "5000" is not a multiple of 4096`, n+2)},
		{"unknown option", "", "  flash_sise: 4194304\n",
			fmt.Sprintf(`:%d:3: unknown option "flash_sise" for protocol esprom (hint: did you mean "flash_size"?`, n+2)},
		{"option of another driver", "", "  storage: mmc\n",
			fmt.Sprintf(`:%d:3: unknown option "storage" for protocol esprom`, n+2)},
		{"flow control the driver cannot honour", "  baud: 115200\n", "  baud: 115200\n  flow: rtscts\n",
			`:15:9: serial flow "rtscts": the esprom driver cannot honour it`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := append(slices.Clip(src), "options:\n"+c.new...)
			if c.old != "" {
				if !bytes.Contains(src, []byte(c.old)) {
					t.Fatalf("the example has no %q", c.old)
				}
				b = bytes.Replace(src, []byte(c.old), []byte(c.new), 1)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "r.yaml")
			os.WriteFile(f, b, 0o644)
			os.Symlink(filepath.Join(mustAbs(t, "../../testdata/recipes"), "images"), filepath.Join(dir, "images"))
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"recipe", "check", "--key", testKey, f}, &stdout, &stderr)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 1 {
				t.Fatalf("recipe check = %v, want exit status 1\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), f+c.want) || !strings.Contains(stderr.String(), "(hint: ") {
				t.Errorf("recipe check printed\n%s\nwant %s%s with a hint", stderr.String(), f, c.want)
			}
		})
	}
}

func TestRecipeOptions(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"recipe", "options", "uboot"}, &stdout, &stderr); err != nil {
		t.Fatalf("recipe options uboot: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"storage", "mmc | virtio | nvme | scsi | usb | sf | nor | ram", "mmcdev", "integer 0..15", "loadaddr", "observe", "step_timeout", "serial flow: none"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("recipe options uboot printed\n%s\nwant %q in it", stdout.String(), want)
		}
	}
	if err := run(context.Background(), []string{"recipe", "options", "jtag"}, &stdout, &stderr); err == nil {
		t.Errorf("recipe options jtag = nil error, want one naming the protocols")
	}
}
