package ymodem_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/ymodem"
	"github.com/unbrick/unbrick/internal/peertest"
)

// The tests below hold this package against lrzsz 0.12.21, the sender and
// receiver every Linux distribution ships, on pseudo-terminals made by
// socat. They follow the traps ARCHITECTURE.md lists: rb and rx flush their
// terminal when they exit, which can eat their own last ACK, so they get a
// socketpair through socat's EXEC; sb flushes its input when it starts, so
// the receiver repeats its 'C' every second.

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		pkg := "lrzsz"
		if tool == "socat" {
			pkg = "socat"
		}
		peertest.Need(t, peertest.Tool{Name: tool, Package: pkg})
	}
}

// waitPath waits for a path a child process creates.
func waitPath(t *testing.T, path string, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling another process's effect, not synchronising goroutines
	}
	t.Fatalf("%s never appeared; %s said: %s", path, cmd.Args[0], stderr.String())
}

// start starts cmd and makes the test stop it (by its own process id) if it
// is still running at the end.
func start(t *testing.T, cmd *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Args[0], err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return &stderr
}

// ptyPair makes two connected pseudo-terminals with socat and returns
// their paths.
func ptyPair(t *testing.T) (a, b string) {
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	stderr := start(t, cmd)
	waitPath(t, a, cmd, stderr)
	waitPath(t, b, cmd, stderr)
	return a, b
}

func openPort(t *testing.T, path string) serial.Port {
	t.Helper()
	p, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// sender runs an lrzsz sender with its standard input and output on the
// terminal at path.
func sender(t *testing.T, path string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	tty, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout = tty, tty
	return cmd, start(t, cmd)
}

// receiver runs an lrzsz receiver in dir behind a pseudo-terminal that
// socat links at the returned path, over a socketpair.
func receiver(t *testing.T, dir, cmdline string) (string, *exec.Cmd, *bytes.Buffer) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "dev")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+link, "EXEC:"+cmdline)
	cmd.Dir = dir
	stderr := start(t, cmd)
	waitPath(t, link, cmd, stderr)
	return link, cmd, stderr
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var interopSizes = []int{1, 5000, 70000}

// TestLrzszSbToReceive: sb --ymodem -k sends, Receive receives.
func TestLrzszSbToReceive(t *testing.T) {
	needTools(t, "sb", "socat")
	for _, n := range interopSizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := payload(n, uint64(n))
			file := writeFile(t, t.TempDir(), "fw.bin", data)
			a, b := ptyPair(t)
			port := openPort(t, a)
			cmd, stderr := sender(t, b, "sb", "--ymodem", "-k", file)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			files, err := ymodem.Receive(ctx, port, ymodem.Options{Interval: time.Second, StartTimeout: 30 * time.Second})
			werr := cmd.Wait()
			if err != nil {
				t.Fatalf("Receive from sb = %v; sb: %v %s", err, werr, stderr)
			}
			if werr != nil {
				t.Errorf("sb exited with %v: %s", werr, stderr)
			}
			if len(files) != 1 || files[0].Name != "fw.bin" || files[0].Size != int64(n) || !bytes.Equal(files[0].Data, data) {
				t.Fatalf("Receive from sb returned %d files (first %q, size %d); want fw.bin with the %d bytes sent", len(files), name(files), size(files), n)
			}
		})
	}
}

func name(fs []ymodem.File) string {
	if len(fs) == 0 {
		return ""
	}
	return fs[0].Name
}

func size(fs []ymodem.File) int64 {
	if len(fs) == 0 {
		return -1
	}
	return fs[0].Size
}

// TestLrzszSendToRb: Send sends, rb --ymodem receives.
func TestLrzszSendToRb(t *testing.T) {
	needTools(t, "rb", "socat")
	for _, n := range interopSizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := payload(n, uint64(n)+1)
			out := t.TempDir()
			link, cmd, stderr := receiver(t, out, "rb --ymodem")
			port := openPort(t, link)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			mtime := time.Unix(1700000000, 0)
			err := ymodem.Send(ctx, port, []ymodem.File{{Name: "fw.bin", Data: data, ModTime: mtime, Mode: 0o100644}}, ymodem.Options{StartTimeout: 30 * time.Second})
			werr := cmd.Wait()
			if err != nil {
				t.Fatalf("Send to rb = %v; rb: %v %s", err, werr, stderr)
			}
			got, err := os.ReadFile(filepath.Join(out, "fw.bin"))
			if err != nil {
				t.Fatalf("rb wrote no file: %v; %s", err, stderr)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("rb wrote %d bytes that differ from the %d sent", len(got), n)
			}
			if fi, err := os.Stat(filepath.Join(out, "fw.bin")); err == nil && !fi.ModTime().Equal(mtime) {
				t.Errorf("rb set the file's time to %v, want %v from block 0", fi.ModTime(), mtime)
			}
		})
	}
}

// TestLrzszXMODEM: sx -k sends to ReceiveXMODEM, SendXMODEM sends to rx -c.
func TestLrzszXMODEM(t *testing.T) {
	needTools(t, "sx", "rx", "socat")
	const n = 5000
	data := payload(n, 9)
	t.Run("sx to ReceiveXMODEM", func(t *testing.T) {
		file := writeFile(t, t.TempDir(), "fw.bin", data)
		a, b := ptyPair(t)
		port := openPort(t, a)
		cmd, stderr := sender(t, b, "sx", "-k", file)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got, err := ymodem.ReceiveXMODEM(ctx, port, ymodem.Options{Interval: time.Second, StartTimeout: 30 * time.Second})
		werr := cmd.Wait()
		if err != nil {
			t.Fatalf("ReceiveXMODEM from sx = %v; sx: %v %s", err, werr, stderr)
		}
		checkPadded(t, got, data)
	})
	t.Run("SendXMODEM to rx -c", func(t *testing.T) {
		out := t.TempDir()
		link, cmd, stderr := receiver(t, out, "rx -c out.bin")
		port := openPort(t, link)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := ymodem.SendXMODEM(ctx, port, data, ymodem.Options{StartTimeout: 30 * time.Second})
		werr := cmd.Wait()
		if err != nil {
			t.Fatalf("SendXMODEM to rx = %v; rx: %v %s", err, werr, stderr)
		}
		got, err := os.ReadFile(filepath.Join(out, "out.bin"))
		if err != nil {
			t.Fatalf("rx wrote no file: %v; %s", err, stderr)
		}
		checkPadded(t, got, data)
	})
}

// checkPadded checks that got is data padded with 0x1A to the 128-byte or
// 1 KiB block XMODEM left it in.
func checkPadded(t *testing.T, got, data []byte) {
	t.Helper()
	if len(got) < len(data) || !bytes.Equal(got[:len(data)], data) {
		t.Fatalf("received %d bytes whose start differs from the %d sent", len(got), len(data))
	}
	if pad := got[len(data):]; len(pad) >= 1024 || strings.Trim(string(pad), "\x1a") != "" {
		t.Fatalf("after the data come %d bytes %q, want less than a block of 0x1A", len(pad), pad[:min(len(pad), 16)])
	}
}
