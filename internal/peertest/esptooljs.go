package peertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// EsptoolJSVersion is the esptool-js release scripts/peers/esptool-js.sh
// installs from npm.
const EsptoolJSVersion = "0.7.0"

// EsptoolJSFile is one file esptool-js writes.
type EsptoolJSFile struct {
	Addr uint32
	Data []byte
}

// EsptoolJSRun says what esptool-js does on a unit in its bootloader.
type EsptoolJSRun struct {
	// Port is the host side of the unit's pseudo-terminal.
	Port string
	// Baud is the rate esptool-js switches to after the stub starts (with
	// CHANGE_BAUDRATE); 0 means 115200, no change.
	Baud int
	// NoStub talks to the ROM alone (esptool-js's main() always loads the
	// stub; without it the shim detects the chip and goes on by hand).
	NoStub bool
	// Uncompressed writes with FLASH_DATA instead of FLASH_DEFL_DATA.
	Uncompressed bool
	// Write is written with esptool-js's writeFlash, each file checked by
	// SPI_FLASH_MD5 against the file's MD5.
	Write []EsptoolJSFile
	// ReadAddr and ReadLen, when ReadLen > 0, read flash back with the
	// stub's READ_FLASH.
	ReadAddr, ReadLen uint32
	// Timeout bounds the whole run; 0 means 2 minutes.
	Timeout time.Duration
}

// EsptoolJSResult is what esptool-js reported.
type EsptoolJSResult struct {
	Chip    string `json:"chip"`    // "ESP32-D0WDQ6 (revision 0)"
	MAC     string `json:"mac"`     // "24:0a:c4:12:34:56"
	FlashID uint32 `json:"flashId"` // SPI_W0 after RDID: manufacturer | type<<8 | capacity<<16
	Stub    bool   `json:"stub"`    // the flasher stub ran
	Written []struct {
		Address uint32 `json:"address"`
		Length  int    `json:"length"`
	} `json:"written"`
	Read *struct {
		Address uint32 `json:"address"`
		Hex     string `json:"hex"`
	} `json:"read"`
	// Log is what esptool-js printed.
	Log string `json:"-"`
}

// EsptoolJSShim returns the path of the node shim that gives esptool-js a
// Web-Serial-like port over a pseudo-terminal (esptooljs/shim.mjs).
func EsptoolJSShim() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "esptooljs", "shim.mjs")
}

// NeedEsptoolJS returns node's path and the folder esptool-js is installed
// in, or ends the test through Missing.
func NeedEsptoolJS(t testing.TB) (node, dir string) {
	t.Helper()
	paths := Need(t, Tool{Name: "node", Package: "nodejs"}, Tool{Name: "stty", Package: "coreutils"})
	if paths == nil {
		return "", ""
	}
	// esptool-js 0.7 loads its stubs with import attributes (`with {type:
	// "json"}`), which node has from 20.10 (Debian 12's nodejs is 18).
	out, err := exec.Command(paths[0], "--version").Output()
	var major, minor int
	if _, perr := fmt.Sscanf(strings.TrimSpace(string(out)), "v%d.%d", &major, &minor); err != nil || perr != nil || major < 20 || major == 20 && minor < 10 {
		Missing(t, "node %s is too old for esptool-js %s (it needs node 20.10 or later)", strings.TrimSpace(string(out)), EsptoolJSVersion)
		return "", ""
	}
	dir = filepath.Join(Dir(), "esptool-js")
	NeedFile(t, filepath.Join(dir, "node_modules", "esptool-js", "lib", "index.js"), "scripts/peers/esptool-js.sh installs esptool-js "+EsptoolJSVersion+" from npm")
	return paths[0], dir
}

// EsptoolJS runs esptool-js against the unit on r.Port as r says and
// returns what it reported. A failure of esptool-js is an error carrying
// its log; the test decides what that means.
func EsptoolJS(t testing.TB, r EsptoolJSRun) (EsptoolJSResult, error) {
	t.Helper()
	node, dir := NeedEsptoolJS(t)
	args := []string{EsptoolJSShim(), "--esptool", dir, "--port", r.Port}
	if r.Baud > 0 {
		args = append(args, "--baud", fmt.Sprint(r.Baud))
	}
	if r.NoStub {
		args = append(args, "--no-stub")
	}
	if r.Uncompressed {
		args = append(args, "--compress=false")
	}
	tmp := t.TempDir()
	for i, f := range r.Write {
		p := filepath.Join(tmp, fmt.Sprintf("file%d.bin", i))
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return EsptoolJSResult{}, err
		}
		args = append(args, "--write", fmt.Sprintf("0x%x=%s", f.Addr, p))
	}
	if r.ReadLen > 0 {
		args = append(args, "--read", fmt.Sprintf("0x%x=%d", r.ReadAddr, r.ReadLen))
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := EsptoolJSResult{Log: stderr.String()}
	if err != nil {
		return res, fmt.Errorf("esptool-js %s: %v\n%s", strings.Join(args[1:], " "), err, stderr.String())
	}
	_, result, ok := strings.Cut(stdout.String(), "RESULT ")
	if !ok {
		return res, fmt.Errorf("esptool-js printed no result:\n%s\n%s", stdout.String(), stderr.String())
	}
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		return res, fmt.Errorf("esptool-js: its result is not JSON: %v\n%s", err, stderr.String())
	}
	res.Log = stderr.String()
	return res, nil
}
