package ubootsim

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/sim"
)

// TestLrzszIntoLoady holds the loady/loadx model against lrzsz 0.12.21:
// sb (YMODEM) and sx (XMODEM) send a file from a real pseudo-terminal into
// the model's RAM, as a person at a terminal does with U-Boot.
func TestLrzszIntoLoady(t *testing.T) {
	tests := []struct {
		name string
		cmd  string   // the U-Boot command
		tool []string // the sender and its options
	}{
		{"sb into loady", "loady 83000000", []string{"sb", "--ymodem", "-k"}},
		{"sx into loadx", "loadx 83000000", []string{"sx", "-k"}},
		// loady takes XMODEM too, after dropping the first block unanswered
		// (xyzModem_stream_open): sx sends it again after its timeout.
		{"sx into loady", "loady 83000000", []string{"sx", "-k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peertest.Need(t, peertest.Tool{Name: tt.tool[0], Package: "lrzsz"})
			m, err := New(board, Options{Serial: "HMI-7", BootDelay: -1, A: SlotImage{Version: "1.0"}})
			if err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(t.TempDir(), "ttyUSB0")
			p, err := sim.OpenPTY(link)
			if err != nil {
				t.Fatal(err)
			}
			line := sim.NewLine(sim.LineConfig{Fast: true})
			line.Attach(p)
			d := sim.NewDevice(board, m, line)
			defer d.Close()
			port, err := serial.Open(link, &serial.Mode{BaudRate: 115200})
			if err != nil {
				t.Fatal(err)
			}
			defer port.Close()
			d.SetPower(true)
			expect(t, port, Prompt, 10*time.Second)

			data := make([]byte, 5000+1024*7+17)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			file := filepath.Join(t.TempDir(), "fw.bin")
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			port.Write([]byte(tt.cmd + "\r"))
			expect(t, port, "bps...\r\n", 10*time.Second)

			tty, err := os.OpenFile(link, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer tty.Close()
			cmd := exec.Command(tt.tool[0], append(tt.tool[1:], file)...)
			var stderr bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s exited with %v: %s", tt.tool[0], err, stderr.String())
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("%s did not finish within 60 s: %s", tt.tool[0], stderr.String())
			}
			// XMODEM pads the last block with 0x1A; U-Boot's loadx cuts it off.
			out := expect(t, port, "\r\n"+Prompt, 10*time.Second)
			if !strings.Contains(out, fmt.Sprintf("## Total Size      = 0x%08x = %d Bytes", len(data), len(data))) {
				t.Errorf("%s printed %q, want a total size of %d", tt.cmd, out, len(data))
			}
			got, err := m.RAM(0x83000000, len(data))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("RAM after %s differs from the file sb sent (err %v)", tt.cmd, err)
			}
			port.Write([]byte(fmt.Sprintf("crc32 83000000 %x\r", len(data))))
			out = expect(t, port, "\r\n"+Prompt, 10*time.Second)
			if want := fmt.Sprintf("==> %08x", crc32.ChecksumIEEE(data)); !strings.Contains(out, want) {
				t.Errorf("crc32 printed %q, want %q", out, want)
			}
		})
	}
}

// expect reads port until the text contains want.
func expect(t *testing.T, port serial.Port, want string, within time.Duration) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	port.SetReadTimeout(100 * time.Millisecond)
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		n, err := port.Read(buf)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return string(got)
		}
	}
	t.Fatalf("after %v the unit sent %q, want %q", within, got, want)
	return ""
}
