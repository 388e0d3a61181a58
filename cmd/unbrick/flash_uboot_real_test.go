package main

import (
	"bytes"
	"context"
	le "encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// A recovery program loaded to RAM and booted from there with bootm
	// (the driver's default for storage=ram), as a U-Boot standalone
	// uImage: bootm checks its header and data CRCs, copies it to its load
	// address and runs it; its own output on the console proves it ran.
	// (U-Boot's go hangs in this QEMU build even for "mov x0, #0; ret".)
	if _, err := c.Run(ctx, "setenv autostart yes"); err != nil {
		t.Fatal(err)
	}
	port.Close()
	prog := filepath.Join(t.TempDir(), "recovery.uimg")
	if err := os.WriteFile(prog, standaloneUImage(aarch64Hello("UNBRICK-RAM-OK\r\n"), 0x40800000), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	err = runFlash(context.Background(), []string{"--port", u.Path, "--protocol", "uboot",
		"--options", "storage=ram", "--address", "0x40400000", prog}, &stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), "started the application") {
		t.Fatalf("unbrick flash (storage=ram, booted) = %v\n%s%s", err, stdout.String(), stderr.String())
	}
	port, err = serial.Open(u.Path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	port.Write([]byte{' '}) // the program waits for a key
	var got []byte
	buf := make([]byte, 256)
	port.SetReadTimeout(100 * time.Millisecond)
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && !bytes.Contains(got, []byte("UNBRICK-RAM-OK\r\n")); {
		n, err := port.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, []byte("UNBRICK-RAM-OK")) {
		t.Errorf("after unbrick flash booted the RAM image, the console showed %q; want the program's output", got)
	}
}

// standaloneUImage wraps code in a legacy uImage (include/image.h) of a
// U-Boot standalone program for AArch64, loaded and entered at load.
func standaloneUImage(code []byte, load uint32) []byte {
	h := make([]byte, 64)
	be := le.BigEndian
	be.PutUint32(h[0:], 0x27051956) // IH_MAGIC
	be.PutUint32(h[12:], uint32(len(code)))
	be.PutUint32(h[16:], load)
	be.PutUint32(h[20:], load)
	be.PutUint32(h[24:], crc32.ChecksumIEEE(code))
	h[28], h[29], h[30], h[31] = 17, 22, 1, 0 // IH_OS_U_BOOT, IH_ARCH_ARM64, IH_TYPE_STANDALONE, IH_COMP_NONE
	copy(h[32:], "unbrick recovery")
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return append(h, code...)
}

// aarch64Hello is a bare AArch64 program for QEMU's virt machine: it
// waits for a key on the PL011 UART (0x09000000), so that nothing it prints
// is lost while no one holds the console open, writes msg and returns 0 to
// its caller.
func aarch64Hello(msg string) []byte {
	var code []byte
	put := func(w uint32) { code = le.LittleEndian.AppendUint32(code, w) }
	put(0xD2A12001) // movz x1, #0x0900, lsl #16
	put(0xB9401823) // wait: ldr w3, [x1, #0x18]  (UARTFR)
	put(0x3727FFE3) // tbnz w3, #4, wait         (RXFE: nothing received)
	put(0xB9400023) // ldr w3, [x1]               (take the key)
	for _, ch := range []byte(msg) {
		put(0x52800002 | uint32(ch)<<5) // movz w2, #ch
		put(0x39000022)                 // strb w2, [x1]
	}
	put(0xD2800000) // movz x0, #0
	put(0xD65F03C0) // ret
	return code
}
