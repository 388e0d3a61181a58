package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/internal/peertest"
)

// TestFlashRealUBootRAM is issue 8's acceptance: unbrick flash --protocol
// uboot loads 100 kB into real U-Boot 2023.01 in QEMU, at 0x40200000 in
// RAM, and U-Boot's own crc32 of the loaded bytes matches the file's.
func TestFlashRealUBootRAM(t *testing.T) {
	u := peertest.StartUBoot(t, peertest.UBootOptions{})
	img := make([]byte, 100_000)
	r := rand.New(rand.NewPCG(8, 8))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := runFlash(context.Background(), []string{"--port", u.Path, "--protocol", "uboot",
		"--options", "storage=ram", "--address", "0x40200000", "--no-start", file}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("unbrick flash = %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote and verified 100000 bytes at 0x40200000") {
		t.Errorf("unbrick flash printed %q, want the verified write", stdout.String())
	}
	// Ask U-Boot itself, on a fresh connection.
	port, err := serial.Open(u.Path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	c := uboot.New(port, uboot.Options{})
	ctx := context.Background()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := c.Run(ctx, fmt.Sprintf("crc32 40200000 %x", len(img)))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("crc32 for 40200000 ... 4021869f ==> %08x", crc32.ChecksumIEEE(img))
	if out != want {
		t.Errorf("U-Boot's crc32 printed %q, want %q", out, want)
	}
}
