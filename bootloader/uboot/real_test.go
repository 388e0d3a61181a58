package uboot_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/uboot"
	"github.com/unbrick/unbrick/internal/peertest"
)

// The real U-Boot (Debian u-boot-qemu 2023.01, qemu_arm64) that every test
// of this package shares: one boot per test binary, with a virtio disk and
// a CFI flash bank on files the tests read from the host side.
var real struct {
	dir   string
	disk  string
	nvme  string
	sata  string
	flash string
}

const (
	realRAM       = 0x40200000 // U-Boot's loadaddr on qemu_arm64
	realStage     = 0x41000000 // where storage writes are staged
	realDiskSize  = 16 << 20
	realNORBase   = 0x04000000 // the second CFI bank (pflash unit 1)
	realNOROffset = 0x00100000 // clear of the environment's two sectors
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "uboot-real-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	real.dir = dir
	real.disk = filepath.Join(dir, "disk.img")
	real.flash = filepath.Join(dir, "flash1.img")
	real.nvme = filepath.Join(dir, "nvme.img")
	real.sata = filepath.Join(dir, "sata.img")
	code := m.Run()
	peertest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// realUBoot returns the shared real U-Boot, booting it on first use.
func realUBoot(t testing.TB) *peertest.UBoot {
	t.Helper()
	if _, err := os.Stat(real.disk); err != nil {
		peertest.WriteDiskFile(t, real.disk, realDiskSize)
		peertest.WriteDiskFile(t, real.nvme, realDiskSize)
		peertest.WriteDiskFile(t, real.sata, realDiskSize)
		peertest.WriteFlashFile(t, real.flash)
	}
	return peertest.SharedUBoot(t, peertest.UBootOptions{Disk: real.disk, NVMe: real.nvme, SATA: real.sata, Flash: real.flash})
}

// realClient opens the real U-Boot's console and returns a client at its
// prompt (Stop works on a unit already there).
func realClient(t testing.TB, o uboot.Options) (*uboot.Client, *peertest.UBoot) {
	t.Helper()
	u := realUBoot(t)
	port, err := serial.Open(u.Path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("open %s: %v", u.Path, err)
	}
	t.Cleanup(func() { port.Close() })
	if o.LineMax == 0 {
		o.LineMax = 512 // the qemu_arm64 build's CONFIG_SYS_CBSIZE (it keeps 512 typed characters)
	}
	c := uboot.New(port, o)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	return c, u
}

func TestRealCommands(t *testing.T) {
	c, u := realClient(t, uboot.Options{})
	ctx := context.Background()
	if !strings.Contains(u.Banner, "U-Boot 2023.01") {
		t.Errorf("banner %q, want U-Boot 2023.01", u.Banner)
	}
	if out, err := c.Run(ctx, "version"); err != nil || !strings.HasPrefix(out, "U-Boot 2023.01") {
		t.Errorf("Run(version) = %q, %v; want U-Boot 2023.01 first", out, err)
	}
	if v, err := c.Env(ctx, "loadaddr"); err != nil || v != "0x40200000" {
		t.Errorf("Env(loadaddr) = %q, %v; want 0x40200000", v, err)
	}
	if _, err := c.Env(ctx, "nosuch"); !errors.Is(err, uboot.ErrNotDefined) {
		t.Errorf("Env(nosuch) = %v, want ErrNotDefined", err)
	}
	// The failure: the client's first command on a real board.
	if _, err := c.Env(ctx, "serial#"); !errors.Is(err, uboot.ErrNotDefined) {
		t.Errorf("Env(serial#) = %v, want ErrNotDefined (QEMU has no serial#)", err)
	}
	if err := c.SetEnv(ctx, "unbrick_test", "a b;c"); err != nil {
		t.Fatalf("SetEnv() = %v", err)
	}
	if v, err := c.Env(ctx, "unbrick_test"); err != nil || v != "a b;c" {
		t.Errorf("Env(unbrick_test) = %q, %v; want %q", v, err, "a b;c")
	}
	var ce *uboot.CommandError
	if out, err := c.Run(ctx, "frobnicate"); !errors.As(err, &ce) || ce.Status != 1 || !strings.Contains(out, "Unknown command 'frobnicate'") {
		t.Errorf("Run(frobnicate) = %q, %v; want a CommandError with status 1", out, err)
	}
	if _, err := c.Run(ctx, "false && echo A || echo B"); !errors.As(err, &ce) {
		t.Errorf("Run(false && echo A || echo B) = %v, want a CommandError (hush skips to the next ;)", err)
	}
	if out, err := c.Run(ctx, "md.b 40000000 20"); err != nil {
		t.Errorf("Run(md.b) = %v", err)
	} else if b, err := uboot.ParseMD(out, 0x40000000, 0x20); err != nil || !bytes.Equal(b[:4], []byte{0xd0, 0x0d, 0xfe, 0xed}) {
		t.Errorf("ParseMD(%q) = % x, %v; want the device tree's magic first", out, b, err)
	}
	if out, err := c.Run(ctx, "cmp.b 40000000 40000000 10"); err != nil || !strings.Contains(out, "Total of 16 byte(s) were the same") {
		t.Errorf("Run(cmp.b) = %q, %v", out, err)
	}
	if out, err := c.Run(ctx, "cmp.b 40000000 40000010 10"); !errors.As(err, &ce) || !strings.Contains(out, "were the same") {
		t.Errorf("Run(cmp.b differing) = %q, %v; want a CommandError", out, err)
	}
	// saveenv: QEMU's CFI flash model refuses U-Boot 2023.01's buffered
	// write of the environment ("Flash buffer write timeout"): the client
	// must report the failure, not take it for a save.
	if err := c.SaveEnv(ctx); !errors.As(err, &ce) || !strings.Contains(ce.Output, "Saving Environment to Flash") {
		t.Errorf("SaveEnv() = %v; want the real failure as a CommandError", err)
	}
	// A line longer than CONFIG_SYS_CBSIZE is refused before it is typed.
	if _, err := c.Run(ctx, "echo "+strings.Repeat("x", 490)); err == nil || !strings.Contains(err.Error(), "CONFIG_SYS_CBSIZE") {
		t.Errorf("Run(495-character line) = %v, want a refusal naming CONFIG_SYS_CBSIZE (512 with the marker)", err)
	}
	if out, err := c.Run(ctx, "echo "+strings.Repeat("x", 470)); err != nil || out != strings.Repeat("x", 470) {
		t.Errorf("Run(475-character line) = %.40q, %v; want it to fit the real board's line", out, err)
	}
	if out, err := c.Run(ctx, "echo still here"); err != nil || out != "still here" {
		t.Errorf("Run(echo) after the refusal = %q, %v", out, err)
	}
}

func TestRealLoadRAM(t *testing.T) {
	c, _ := realClient(t, uboot.Options{})
	ctx := context.Background()
	img := payload(100_000, 3)
	st := uboot.Storage{Kind: "ram"}
	if err := c.Write(ctx, st, realRAM, img, nil); err != nil {
		t.Fatalf("Write(ram) = %v", err)
	}
	if err := c.Verify(ctx, st, realRAM, img, nil); err != nil {
		t.Errorf("Verify(ram) = %v", err)
	}
	got, err := c.Read(ctx, st, realRAM+1000, 300, nil)
	if err != nil || !bytes.Equal(got, img[1000:1300]) {
		t.Errorf("Read(ram) = %v; bytes equal: %v", err, bytes.Equal(got, img[1000:1300]))
	}
	img[5000] ^= 1
	var ve *uboot.VerifyError
	if err := c.Verify(ctx, st, realRAM, img, nil); !errors.As(err, &ve) {
		t.Errorf("Verify(ram) of other data = %v, want a VerifyError", err)
	}
}

// standalone is a U-Boot standalone program for AArch64 in a legacy uImage
// (include/image.h): it writes msg to the PL011 UART at 0x09000000 and
// returns 0 to U-Boot.
func standalone(msg string, load uint32) []byte {
	var code []byte
	put := func(w uint32) { code = binary.LittleEndian.AppendUint32(code, w) }
	put(0xD2A12001) // movz x1, #0x0900, lsl #16
	for _, ch := range []byte(msg) {
		put(0x52800002 | uint32(ch)<<5) // movz w2, #ch
		put(0x39000022)                 // strb w2, [x1]
	}
	put(0xD2800000) // movz x0, #0
	put(0xD65F03C0) // ret
	h := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(h[0:], 0x27051956) // IH_MAGIC
	be.PutUint32(h[12:], uint32(len(code)))
	be.PutUint32(h[16:], load) // load address
	be.PutUint32(h[20:], load) // entry point
	be.PutUint32(h[24:], crc32.ChecksumIEEE(code))
	h[28], h[29], h[30], h[31] = 17, 22, 1, 0 // IH_OS_U_BOOT, IH_ARCH_ARM64, IH_TYPE_STANDALONE, IH_COMP_NONE
	copy(h[32:], "unbrick recovery")
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return append(h, code...)
}

// TestRealRAMBoot loads a recovery image into RAM only, checks it with
// crc32 and boots it with bootm, which checks its header and data CRCs
// as it does for a kernel: the program's own output proves it ran.
func TestRealRAMBoot(t *testing.T) {
	c, u := realClient(t, uboot.Options{})
	ctx := context.Background()
	img := standalone("UNBRICK-RAM-OK\r\n", 0x40800000)
	if err := c.Write(ctx, uboot.Storage{Kind: "ram"}, realRAM, img, nil); err != nil {
		t.Fatalf("Write(ram) = %v", err)
	}
	if err := c.SetEnv(ctx, "autostart", "yes"); err != nil {
		t.Fatal(err)
	}
	out, err := c.Run(ctx, fmt.Sprintf("bootm %x", realRAM))
	if err != nil || !strings.Contains(out, "Verifying Checksum ... OK") || !strings.Contains(out, "UNBRICK-RAM-OK") {
		t.Errorf("Run(bootm) = %q, %v; want the checksums verified and the program's output", out, err)
	}
	// A broken image is refused by bootm.
	img[len(img)-8] ^= 1
	if err := c.Write(ctx, uboot.Storage{Kind: "ram"}, realRAM, img, nil); err != nil {
		t.Fatal(err)
	}
	var ce *uboot.CommandError
	if out, err := c.Run(ctx, fmt.Sprintf("bootm %x", realRAM)); !errors.As(err, &ce) || !strings.Contains(out, "Bad Data CRC") {
		t.Errorf("Run(bootm) of a corrupt image = %q, %v; want Bad Data CRC", out, err)
	}
	_ = u
}

func TestRealVirtioBlock(t *testing.T) {
	c, _ := realClient(t, uboot.Options{})
	ctx := context.Background()
	img := payload(1<<20, 4)
	const off = 0x300000 + 3*512 + 100 // a block offset, and a partial first and last block
	before, err := os.ReadFile(real.disk)
	if err != nil {
		t.Fatal(err)
	}
	st := uboot.Storage{Kind: "virtio", Dev: 0, LoadAddr: realStage}
	if err := c.Write(ctx, st, off, img, nil); err != nil {
		t.Fatalf("Write(virtio) = %v", err)
	}
	if err := c.Verify(ctx, st, off, img, nil); err != nil {
		t.Errorf("Verify(virtio) = %v", err)
	}
	disk, err := os.ReadFile(real.disk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[off:off+len(img)], img) {
		t.Errorf("the disk image does not hold the 1 MiB at %#x", off)
	}
	if !bytes.Equal(disk[:off], before[:off]) || !bytes.Equal(disk[off+len(img):], before[off+len(img):]) {
		t.Errorf("the write changed the disk outside %#x+%#x", off, len(img))
	}
	var ce *uboot.CommandError
	if err := c.Write(ctx, uboot.Storage{Kind: "virtio", Dev: 3, LoadAddr: realStage}, 0, img[:512], nil); !errors.As(err, &ce) {
		t.Errorf("Write(virtio 3) = %v, want a CommandError (no such device)", err)
	}
	if err := c.Write(ctx, st, realDiskSize-512, img[:1024], nil); !errors.As(err, &ce) {
		t.Errorf("Write(past the disk's end) = %v, want a CommandError", err)
	}
}

// TestRealNOR writes the CFI NOR flash of real U-Boot: 4 KiB at a
// sector's start (QEMU's flash model takes no more a sector from U-Boot
// 2023.01), read from the flash file on the host afterwards.
// TestRealBlockInterfaces writes through the other block interfaces with
// the same command shape (nvme, and scsi over AHCI), read back on the host.
func TestRealBlockInterfaces(t *testing.T) {
	c, _ := realClient(t, uboot.Options{})
	ctx := context.Background()
	for _, tt := range []struct{ kind, file string }{{"nvme", real.nvme}, {"scsi", real.sata}} {
		t.Run(tt.kind, func(t *testing.T) {
			img := payload(40_000, 6)
			const off = 0x20000 + 7*512 + 3
			st := uboot.Storage{Kind: tt.kind, Dev: 0, LoadAddr: realStage}
			if err := c.Write(ctx, st, off, img, nil); err != nil {
				t.Fatalf("Write(%s) = %v", tt.kind, err)
			}
			if err := c.Verify(ctx, st, off, img, nil); err != nil {
				t.Errorf("Verify(%s) = %v", tt.kind, err)
			}
			disk, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(disk[off:off+len(img)], img) {
				t.Errorf("the %s disk image does not hold the data at %#x", tt.kind, off)
			}
			var ce *uboot.CommandError
			if err := c.Write(ctx, uboot.Storage{Kind: tt.kind, Dev: 1, LoadAddr: realStage}, 0, img[:512], nil); !errors.As(err, &ce) {
				t.Errorf("Write(%s 1) = %v, want a CommandError (no such device)", tt.kind, err)
			}
		})
	}
}

func TestRealNOR(t *testing.T) {
	c, _ := realClient(t, uboot.Options{})
	ctx := context.Background()
	img := payload(4096, 5)
	const off = realNOROffset
	st := uboot.Storage{Kind: "nor", Base: realNORBase, LoadAddr: realStage}
	if err := c.Write(ctx, st, off, img, nil); err != nil {
		t.Fatalf("Write(nor) = %v", err)
	}
	if err := c.Verify(ctx, st, off, img, nil); err != nil {
		t.Errorf("Verify(nor) = %v", err)
	}
	flash, err := os.ReadFile(real.flash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(flash[off:off+len(img)], img) {
		t.Errorf("the flash file does not hold the image at %#x", off)
	}
	for _, b := range flash[off+len(img) : off+128<<10] {
		if b != 0xFF {
			t.Fatalf("the rest of the sector is not erased")
		}
	}
	got, err := c.Read(ctx, st, off+1000, 64, nil)
	if err != nil || !bytes.Equal(got, img[1000:1064]) {
		t.Errorf("Read(nor) = % x, %v", got, err)
	}
	img[100] ^= 1
	var ve *uboot.VerifyError
	if err := c.Verify(ctx, st, off, img, nil); !errors.As(err, &ve) {
		t.Errorf("Verify(nor) of other data = %v, want a VerifyError", err)
	}
}

func TestRealTypedLinesChecked(t *testing.T) {
	// Tiny chunks: every few characters wait for their echo; the result
	// must be the same.
	c, _ := realClient(t, uboot.Options{Chunk: 3})
	ctx := context.Background()
	if out, err := c.Run(ctx, "echo chunked; printenv loadaddr"); err != nil || out != "chunked\r\nloadaddr=0x40200000" {
		t.Errorf("Run() = %q, %v", out, err)
	}
}

// TestRealReset checks the harness's reset: RAM's environment starts afresh.
func TestRealReset(t *testing.T) {
	c, u := realClient(t, uboot.Options{})
	ctx := context.Background()
	if err := c.SetEnv(ctx, "unbrick_reset", "1"); err != nil {
		t.Fatal(err)
	}
	u.Reset(t)
	c, _ = realClient(t, uboot.Options{})
	if _, err := c.Env(ctx, "unbrick_reset"); !errors.Is(err, uboot.ErrNotDefined) {
		t.Errorf("Env(unbrick_reset) after reset = %v, want ErrNotDefined", err)
	}
	_ = time.Second
}

// BenchmarkLoadyVsSb loads 100 kB into real U-Boot's RAM with the client
// (loady, the project's YMODEM sender, then U-Boot's crc32 of what landed)
// and, in the same run and the same U-Boot, with lrzsz's sb --ymodem -k
// typed after loady as a person would. x-sb is the client's time over
// sb's (the goal is 0.5 or less): sb waits for a 'C' after block 0, which
// U-Boot's xyzModem only sends after its own timeout; the client sends
// block 1 at once.
func BenchmarkLoadyVsSb(b *testing.B) {
	peertest.Need(b, peertest.Tool{Name: "sb", Package: "lrzsz"})
	c, u := realClient(b, uboot.Options{})
	ctx := context.Background()
	img := payload(100_000, 11)
	file := filepath.Join(b.TempDir(), "fw.bin")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		b.Fatal(err)
	}
	var ours, sb time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := c.Load(ctx, realRAM, img, nil); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		b.StopTimer()
		sb += sbIntoReal(b, u.Path, file, len(img))
		if err := c.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		if got, err := c.CRC32(ctx, realRAM, len(img)); err != nil || got != crc32.ChecksumIEEE(img) {
			b.Fatalf("after sb, U-Boot's crc32 = %08x, %v; want %08x", got, err, crc32.ChecksumIEEE(img))
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(ours.Seconds()/n, "load-s")
	b.ReportMetric(sb.Seconds()/n, "sb-s")
	b.ReportMetric(ours.Seconds()/sb.Seconds(), "x-sb")
}

// sbIntoReal types loady on the real U-Boot's console, runs sb on it and
// returns the time from typing loady to loady's total.
func sbIntoReal(b *testing.B, path, file string, size int) time.Duration {
	b.Helper()
	tty, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer tty.Close()
	start := time.Now()
	tty.Write([]byte(fmt.Sprintf("loady %x\r", realRAM)))
	readTTY(b, tty, "bps...\r\n")
	cmd := exec.Command("sb", "--ymodem", "-k", file)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("sb: %v: %s", err, stderr.String())
	}
	readTTY(b, tty, fmt.Sprintf("= %d Bytes\r\n", size))
	return time.Since(start)
}

func readTTY(b *testing.B, f *os.File, want string) {
	b.Helper()
	var got []byte
	buf := make([]byte, 4096)
	f.SetReadDeadline(time.Now().Add(60 * time.Second))
	for !bytes.Contains(got, []byte(want)) {
		n, err := f.Read(buf)
		if err != nil {
			b.Fatalf("read %q so far, want %q: %v", got, want, err)
		}
		got = append(got, buf[:n]...)
	}
}

// TestRealArm32 runs the client's commands against the 32-bit build
// (qemu_arm in qemu-system-arm on a Cortex-A15), booted for this test.
func TestRealArm32(t *testing.T) {
	u := peertest.StartUBoot(t, peertest.UBootOptions{Arch: "arm"})
	port, err := serial.Open(u.Path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	c := uboot.New(port, uboot.Options{})
	ctx := context.Background()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if out, err := c.Run(ctx, "version"); err != nil || !strings.HasPrefix(out, "U-Boot 2023.01") {
		t.Errorf("Run(version) = %q, %v", out, err)
	}
	addr, err := c.Env(ctx, "loadaddr")
	if err != nil {
		t.Fatalf("Env(loadaddr) = %v", err)
	}
	var a uint32
	if _, err := fmt.Sscanf(addr, "0x%x", &a); err != nil {
		t.Fatalf("loadaddr %q: %v", addr, err)
	}
	img := payload(20_000, 12)
	if err := c.Write(ctx, uboot.Storage{Kind: "ram"}, int64(a), img, nil); err != nil {
		t.Fatalf("Write(ram at %s) = %v", addr, err)
	}
	got, err := c.Read(ctx, uboot.Storage{Kind: "ram"}, int64(a)+100, 48, nil)
	if err != nil || !bytes.Equal(got, img[100:148]) {
		t.Errorf("Read(ram) = % x, %v", got, err)
	}
	var ce *uboot.CommandError
	if _, err := c.Run(ctx, "printenv nosuch && echo A || echo B"); !errors.As(err, &ce) {
		t.Errorf("Run(printenv nosuch && ...) = %v, want a CommandError", err)
	}
}
