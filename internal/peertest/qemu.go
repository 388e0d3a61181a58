package peertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// UBootOptions choose the real U-Boot (Debian u-boot-qemu 2023.01) a test
// runs in QEMU's virt machine, and what is attached to it.
type UBootOptions struct {
	// Arch is "arm64" (the qemu_arm64 build in qemu-system-aarch64 on a
	// Cortex-A57; the default) or "arm" (the qemu_arm build in
	// qemu-system-arm on a Cortex-A15).
	Arch string
	// Disk, if set, is a raw disk image behind a virtio block device
	// (U-Boot's "virtio 0").
	Disk string
	// NVMe, if set, is a raw disk image behind an NVMe controller
	// (U-Boot's "nvme 0").
	NVMe string
	// SATA, if set, is a raw disk image on an AHCI controller (U-Boot's
	// "scsi 0"; U-Boot 2023.01 drives AHCI through its scsi commands).
	SATA string
	// Flash, if set, is a 64 MiB file behind the second CFI flash bank
	// (pflash unit 1, at 0x04000000: U-Boot keeps its environment there).
	// Without it the bank is QEMU's, lost at exit.
	Flash string
}

// UBootFlashSize is the size of a CFI flash bank file (QEMU's virt machine
// maps two 64 MiB banks).
const UBootFlashSize = 64 << 20

// UBoot is a real U-Boot running in QEMU, stopped at its "=> " prompt.
type UBoot struct {
	// Path is the pseudo-terminal of its console (the PL011 UART). Open it
	// raw; nobody else holds it open between tests.
	Path string
	// Banner is what U-Boot printed from reset to its first prompt.
	Banner string

	cmd  *exec.Cmd
	argv []string
	mu   sync.Mutex
	out  bytes.Buffer // QEMU's own stdout and stderr
	done chan struct{}
}

var ptyRe = regexp.MustCompile(`char device redirected to (/dev/pts/\d+)`)

// ubootArgv is the QEMU command line for o, or the reason it cannot run.
func ubootArgv(t testing.TB, o UBootOptions) []string {
	t.Helper()
	var tools []string
	var bios, cpu string
	switch o.Arch {
	case "", "arm64":
		tools = Need(t, Tool{"qemu-system-aarch64", "qemu-system-arm"})
		bios, cpu = "/usr/lib/u-boot/qemu_arm64/u-boot.bin", "cortex-a57"
	case "arm":
		tools = Need(t, Tool{"qemu-system-arm", "qemu-system-arm"})
		bios, cpu = "/usr/lib/u-boot/qemu_arm/u-boot.bin", "cortex-a15"
	default:
		t.Fatalf("peertest: U-Boot arch %q: want arm64 or arm", o.Arch)
	}
	if len(tools) == 0 {
		return nil
	}
	NeedFile(t, bios, "Debian package u-boot-qemu")
	// -nic none: without it QEMU looks for the virtio-net option ROM
	// (efi-virtio.rom, Debian ipxe-qemu) and exits.
	argv := []string{tools[0], "-M", "virt", "-cpu", cpu, "-m", "512M", "-nographic",
		"-monitor", "none", "-nic", "none", "-serial", "pty", "-bios", bios}
	if o.Disk != "" {
		argv = append(argv, "-drive", "if=none,file="+o.Disk+",format=raw,id=d0", "-device", "virtio-blk-device,drive=d0")
	}
	if o.NVMe != "" {
		argv = append(argv, "-drive", "if=none,file="+o.NVMe+",format=raw,id=n0", "-device", "nvme,drive=n0,serial=unbrick1")
	}
	if o.SATA != "" {
		argv = append(argv, "-device", "ahci,id=ahci", "-drive", "if=none,file="+o.SATA+",format=raw,id=s0", "-device", "ide-hd,drive=s0,bus=ahci.0")
	}
	if o.Flash != "" {
		argv = append(argv, "-drive", "if=pflash,unit=1,format=raw,file="+o.Flash)
	}
	return argv
}

// StartUBoot boots a real U-Boot of its own for this test and stops its
// autoboot; QEMU is killed when the test ends. Boots are slow on a shared
// machine: prefer SharedUBoot.
func StartUBoot(t testing.TB, o UBootOptions) *UBoot {
	t.Helper()
	argv := ubootArgv(t, o)
	if argv == nil {
		return nil
	}
	u, err := launchUBoot(argv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("QEMU printed:\n%s", u.Output())
		}
		u.Stop()
	})
	return u
}

var shared struct {
	mu    sync.Mutex
	boots map[UBootOptions]*UBoot
}

// SharedUBoot returns the real U-Boot with these options that all tests of
// the test binary share, booting it on first use. Tests get it at its
// prompt, in whatever state the last test left RAM, storage and the
// environment; call Reset for a fresh boot. It runs until StopShared
// (call it from TestMain) or until the test binary exits.
func SharedUBoot(t testing.TB, o UBootOptions) *UBoot {
	t.Helper()
	argv := ubootArgv(t, o)
	if argv == nil {
		return nil
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if u := shared.boots[o]; u != nil {
		select {
		case <-u.done:
		default:
			return u
		}
	}
	u, err := launchUBoot(argv)
	if err != nil {
		t.Fatal(err)
	}
	if shared.boots == nil {
		shared.boots = map[UBootOptions]*UBoot{}
	}
	shared.boots[o] = u
	return u
}

// StopShared stops every shared U-Boot.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for k, u := range shared.boots {
		u.Stop()
		delete(shared.boots, k)
	}
}

// launchUBoot starts QEMU, reads its console up to the autoboot countdown
// and stops it.
func launchUBoot(argv []string) (*UBoot, error) {
	u := &UBoot{argv: argv, done: make(chan struct{})}
	u.cmd = exec.Command(argv[0], argv[1:]...)
	// QEMU dies with the test binary, even one killed by go test's timeout.
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	u.cmd.Stdout = (*lockedWriter)(u)
	u.cmd.Stderr = (*lockedWriter)(u)
	if err := u.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", argv[0], err)
	}
	go func() {
		u.cmd.Wait()
		close(u.done)
	}()
	end := time.Now().Add(30 * time.Second)
	for u.Path == "" {
		if m := ptyRe.FindStringSubmatch(u.Output()); m != nil {
			u.Path = m[1]
			break
		}
		select {
		case <-u.done:
			return nil, fmt.Errorf("%s exited before announcing its console: %v\n%s", argv[0], u.cmd.ProcessState, u.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			u.Stop()
			return nil, fmt.Errorf("%s did not announce its console within 30 s\n%s", argv[0], u.Output())
		}
	}
	banner, err := u.stopAutoboot(nil)
	if err != nil {
		u.Stop()
		return nil, err
	}
	u.Banner = banner
	return u, nil
}

type lockedWriter UBoot

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// Output returns what QEMU printed on its stdout and stderr.
func (u *UBoot) Output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.out.String()
}

// Stop kills QEMU and waits for it.
func (u *UBoot) Stop() {
	if u.cmd.Process != nil {
		u.cmd.Process.Kill()
	}
	<-u.done
}

// Reset resets the machine (U-Boot's reset command) and stops autoboot
// again: RAM and the environment in RAM start afresh; the disk and flash
// files keep what was written.
func (u *UBoot) Reset(t testing.TB) {
	t.Helper()
	banner, err := u.stopAutoboot([]byte("\x03reset\r"))
	if err != nil {
		t.Fatalf("reset U-Boot: %v\nQEMU printed:\n%s", err, u.Output())
	}
	u.Banner = banner
}

// console opens the console raw for the harness's own reads and
// writes.
func (u *UBoot) console() (*os.File, error) {
	f, err := os.OpenFile(u.Path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err == nil {
		// cfmakeraw: no echo (the line discipline would type U-Boot's own
		// output back into it), no CR/NL translation, 8 bits.
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 0, 1
		err = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, tio)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("peertest: make %s raw: %v", u.Path, err)
	}
	return f, nil
}

// stopAutoboot writes first (if any), then presses Ctrl-C every 100 ms
// until U-Boot has printed its autoboot countdown (or anything) and sits at
// "=> " with nothing more to say; it returns what U-Boot printed. A missed
// countdown only costs time: qemu's distro boot finds nothing to boot and
// ends at the prompt too.
func (u *UBoot) stopAutoboot(first []byte) (string, error) {
	f, err := u.console()
	if err != nil {
		return "", err
	}
	defer f.Close()
	if len(first) > 0 {
		if _, err := f.Write(first); err != nil {
			return "", err
		}
	}
	var got []byte
	buf := make([]byte, 4096)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sawCountdown := len(first) == 0
	lastKey := time.Time{}
	quiet := 0
	for ctx.Err() == nil {
		n, err := f.Read(buf) // VTIME: up to 100 ms
		if err != nil && err != io.EOF {
			return string(got), fmt.Errorf("peertest: read %s: %v", u.Path, err)
		}
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte("Hit any key to stop autoboot")) || bytes.Contains(got, []byte("U-Boot 20")) {
			sawCountdown = true
		}
		if n > 0 {
			quiet = 0
		} else {
			quiet++
		}
		if bytes.HasSuffix(got, []byte("\n=> ")) && quiet >= 3 && sawCountdown {
			return string(got), nil
		}
		if sawCountdown && time.Since(lastKey) >= 100*time.Millisecond && !bytes.HasSuffix(got, []byte("\n=> ")) {
			if _, err := f.Write([]byte{0x03}); err != nil {
				return string(got), err
			}
			lastKey = time.Now()
		}
		select {
		case <-u.done:
			return string(got), fmt.Errorf("QEMU exited: %v", u.cmd.ProcessState)
		default:
		}
	}
	return string(got), fmt.Errorf("U-Boot did not reach its prompt within 60 s; it printed %q", got)
}

// WriteDiskFile makes a raw disk image of size bytes, zero-filled.
func WriteDiskFile(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// WriteFlashFile makes an erased (0xFF) CFI flash bank file.
func WriteFlashFile(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xFF}, UBootFlashSize), 0o644); err != nil {
		t.Fatal(err)
	}
}
