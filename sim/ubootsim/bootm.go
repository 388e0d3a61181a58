package ubootsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// KernelBootTime is how long the modelled Linux takes from "Starting kernel
// ..." to its application console.
const KernelBootTime = time.Second

// bootm checks and starts a legacy uImage as boot/bootm.c does for
// "bootm kernel [initrd|- [fdt]]". On success it never returns: Linux runs
// until the session ends or the unit resets.
func (u *uboot) bootm(args []string) int {
	addr := uint64(KernelAddr)
	if v, found := hex(u.env["loadaddr"]); found {
		addr = v
	}
	if len(args) > 1 {
		v, good := hex(args[1])
		if !good {
			return usage
		}
		addr = v
	}
	hdr := u.readRAM(addr, UImageHeader)
	if binary.BigEndian.Uint32(hdr) != UImageMagic {
		u.out("Wrong Image Format for bootm command\nERROR: can't get kernel image!\n")
		return fail
	}
	u.out("## Booting kernel from Legacy Image at %08x ...\n", addr)
	size := uint64(binary.BigEndian.Uint32(hdr[12:]))
	img := hdr
	if addr+UImageHeader+size <= RAMBase+RAMSize {
		img = u.readRAM(addr, int(UImageHeader+size))
	}
	k, err := ParseKernel(img)
	if errors.Is(err, ErrBadHeaderCRC) {
		u.out("   Bad Header Checksum\nERROR: can't get kernel image!\n")
		return fail
	}
	u.out("   Image Name:   %s\n   Image Type:   ARM Linux Kernel Image (uncompressed)\n", cstr(hdr[32:64]))
	u.out("   Data Size:    %d Bytes = %s\n", size, sizeString(int64(size)))
	u.out("   Load Address: %08x\n   Entry Point:  %08x\n", binary.BigEndian.Uint32(hdr[16:]), binary.BigEndian.Uint32(hdr[20:]))
	u.out("   Verifying Checksum ... ")
	if err != nil {
		u.out("Bad Data CRC\nERROR: can't get kernel image!\n")
		return fail
	}
	u.out("OK\n")

	// The device tree: the third argument, or none.
	if len(args) < 4 {
		u.out("ERROR: Did not find a cmdline Flattened Device Tree\nCould not find a valid device tree\n")
		return fail
	}
	fdtAddr, good := hex(args[3])
	if !good {
		return usage
	}
	fdtHdr := u.readRAM(fdtAddr, 40)
	if binary.BigEndian.Uint32(fdtHdr) != FDTMagic {
		u.out("ERROR: Did not find a cmdline Flattened Device Tree\nCould not find a valid device tree\n")
		return fail
	}
	total := uint64(binary.BigEndian.Uint32(fdtHdr[4:]))
	fdt := fdtHdr
	if total <= 1<<20 && fdtAddr+total <= RAMBase+RAMSize {
		fdt = u.readRAM(fdtAddr, int(total))
	}
	model, _, err := ParseDeviceTree(fdt)
	if err != nil {
		u.out("ERROR: Did not find a cmdline Flattened Device Tree\nCould not find a valid device tree\n")
		return fail
	}
	u.out("## Flattened Device Tree blob at %08x\n   Booting using the fdt blob at %#x\n", fdtAddr, fdtAddr)
	u.out("Working FDT set to %x\n   Loading Kernel Image\n", fdtAddr)
	u.out("   Loading Device Tree to 9ef1e000, end %08x ... OK\nWorking FDT set to 9ef1e000\n\n", 0x9ef1e000+total-1)
	u.out("Starting kernel ...\n\n")
	u.m.count(func(s *Stats) { s.KernelStarts++ })
	u.linux(k, model)
	return ok
}

// linux runs the modelled kernel: a few boot lines, the root file system,
// then the application. It never returns.
func (u *uboot) linux(k Kernel, model string) {
	m := u.m
	if k.App.Target != m.opts.board {
		// A kernel for another board dies before its console comes up.
		u.hang()
	}
	u.wait(KernelBootTime / 4)
	bootargs := u.env["bootargs"]
	lines := []string{
		"[    0.000000] Booting Linux on physical CPU 0x0",
		fmt.Sprintf("[    0.000000] Linux version %s (builder@unbrick) (arm-linux-gnueabihf-gcc (GCC) 12.3.0, GNU ld (GNU Binutils) 2.40) #1 SMP PREEMPT Mon Jan  8 15:37:48 UTC 2024", k.Version),
		"[    0.000000] CPU: ARMv7 Processor [410fc075] revision 5 (ARMv7), cr=10c5387d",
		"[    0.000000] OF: fdt: Machine model: " + model,
		"[    0.000000] Kernel command line: " + bootargs,
		"[    1.204511] mmc0: new DDR MMC card at address 0001",
		fmt.Sprintf("[    1.210344] mmcblk0: mmc0:0001 8GTF4R %s", sizeString(m.emmc.Size())),
	}
	for _, l := range lines {
		u.out("%s\n", l)
	}
	u.wait(KernelBootTime / 2)

	part, slot, found := u.rootPart(bootargs)
	if !found {
		u.out("[    2.301200] VFS: Cannot open root device \"%s\" or unknown-block(179,%d): error -6\n", rootArg(bootargs), part)
		u.panicLinux(fmt.Sprintf("VFS: Unable to mount root fs on unknown-block(179,%d)", part), bootargs)
	}
	head, _ := m.emmc.Read(slot.RootFS, rootfsDesc+sim.DescriptorSize)
	d, err := parseRootFS(head)
	if errors.Is(err, errNoSquashfs) {
		u.out("[    2.301200] VFS: Cannot open root device \"mmcblk0p%d\" or unknown-block(179,%d): error -22\n", part, part)
		u.panicLinux(fmt.Sprintf("VFS: Unable to mount root fs on unknown-block(179,%d)", part), bootargs)
	}
	if err == nil || errors.Is(err, sim.ErrTruncated) || errors.Is(err, sim.ErrBadChecksum) {
		n := int64(d.Length)
		if n < rootfsDesc+sim.DescriptorSize || n > m.layout.rootFSMax() {
			err = sim.ErrTruncated
		} else {
			b, _ := m.emmc.Read(slot.RootFS, int(n))
			d, err = parseRootFS(b)
		}
	}
	u.out("[    2.301200] VFS: Mounted root (squashfs filesystem) readonly on device 179:%d.\n", part)
	if err != nil {
		u.out("[    2.412000] Run /sbin/init as init process\n[    2.415800] SQUASHFS error: xz decompression failed, data probably corrupt\n")
		u.panicLinux("No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.", bootargs)
	}
	u.out("[    2.412000] Run /sbin/init as init process\n")
	u.wait(KernelBootTime / 4)
	m.confirmBoot()
	if d.Target == m.opts.board {
		m.count(func(s *Stats) { s.AppStarts++ })
	}
	sim.RunApp(u.s, sim.AppConsole{Desc: d, Board: m.opts.board, ID: m.opts.Serial, Baud: consoleBaud, Reboot: m.opts.Watchdog})
	panic(halted{})
}

// rootArg returns the value of root= in the kernel command line.
func rootArg(bootargs string) string {
	for _, f := range strings.Fields(bootargs) {
		if v, found := strings.CutPrefix(f, "root="); found {
			return strings.TrimPrefix(v, "/dev/")
		}
	}
	return ""
}

// rootPart finds the partition root= names among the slots' root file
// systems.
func (u *uboot) rootPart(bootargs string) (int, Slot, bool) {
	arg := rootArg(bootargs)
	n, err := strconv.Atoi(strings.TrimPrefix(arg, "mmcblk0p"))
	if err != nil || !strings.HasPrefix(arg, "mmcblk0p") {
		return 0, Slot{}, false
	}
	for _, s := range []Slot{u.m.layout.A, u.m.layout.B} {
		if s.RootPart == n {
			return n, s, true
		}
	}
	return n, Slot{}, false
}

// panicLinux prints a kernel panic and reboots after panic=N seconds (or
// Options.PanicDelay); without panic= it hangs until the watchdog.
func (u *uboot) panicLinux(msg, bootargs string) {
	u.out("[    2.520000] Kernel panic - not syncing: %s\n", msg)
	u.out("[    2.527000] CPU: 0 PID: 1 Comm: swapper/0 Not tainted %s #1\n", "6.1")
	delay := time.Duration(-1)
	for _, f := range strings.Fields(bootargs) {
		if v, found := strings.CutPrefix(f, "panic="); found {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				delay = time.Duration(n) * time.Second
			}
		}
	}
	if delay > 0 && u.m.opts.PanicDelay > 0 {
		delay = u.m.opts.PanicDelay
	}
	if delay <= 0 {
		u.out("[    2.530000] ---[ end Kernel panic - not syncing: %s ]---\n", msg)
		u.hang()
	}
	u.out("[    2.530000] Rebooting in %d seconds..\n", int((delay+time.Second-1)/time.Second))
	u.wait(delay)
	panic(resetting{})
}

// hang stops the unit until the watchdog (if any) resets it.
func (u *uboot) hang() {
	if d := u.m.opts.Watchdog; d > 0 {
		u.wait(d)
		panic(resetting{})
	}
	for {
		u.wait(time.Hour)
	}
}

// confirmBoot is the userland's boot confirmation (fw_setenv
// upgrade_available 0; fw_setenv bootcount 0), run once the root file
// system is up.
func (m *Model) confirmBoot() {
	env, err := m.loadEnv()
	if err != nil {
		return
	}
	if env["upgrade_available"] == "0" && (env["bootcount"] == "0" || env["bootcount"] == "") {
		return
	}
	env["upgrade_available"] = "0"
	env["bootcount"] = "0"
	if m.storeEnv(env) == nil {
		m.count(func(s *Stats) { s.EnvSaves++ })
	}
}

// SlotInfo is what a slot holds, as the unit would find it at boot.
type SlotInfo struct {
	Kernel Kernel            // the kernel's header (its App is the kernel's descriptor)
	Model  string            // the device tree's model
	RootFS sim.AppDescriptor // the root file system's descriptor: the application's version
}

// CheckSlot checks a slot's images on the eMMC as bootm and Linux would,
// returning what it found along with the first problem.
func (m *Model) CheckSlot(name string) (SlotInfo, error) {
	s, found := m.layout.Slot(name)
	if !found {
		return SlotInfo{}, fmt.Errorf("ubootsim: no slot %q", name)
	}
	var info SlotInfo
	kb, err := m.emmc.Read(s.Kernel, int(m.layout.KernelMax))
	if err != nil {
		return info, err
	}
	if info.Kernel, err = ParseKernel(kb); err != nil {
		return info, fmt.Errorf("slot %s: kernel: %w", name, err)
	}
	if info.Kernel.App.Target != m.opts.board {
		return info, fmt.Errorf("slot %s: kernel built for board %q, not %q", name, info.Kernel.App.Target, m.opts.board)
	}
	fb, err := m.emmc.Read(s.FDT, int(m.layout.FDTMax))
	if err != nil {
		return info, err
	}
	if info.Model, _, err = ParseDeviceTree(fb); err != nil {
		return info, fmt.Errorf("slot %s: device tree: %w", name, err)
	}
	rb, err := m.emmc.Read(s.RootFS, int(m.layout.rootFSMax()))
	if err != nil {
		return info, err
	}
	if info.RootFS, err = parseRootFS(rb); err != nil {
		return info, fmt.Errorf("slot %s: root file system: %w", name, err)
	}
	return info, nil
}
