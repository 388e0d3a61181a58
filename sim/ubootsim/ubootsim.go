// Package ubootsim models an embedded Linux board's U-Boot 2024.01 for the
// virtual bench: a sim.Model with an eMMC (and optionally a SPI NOR flash),
// RAM, an environment stored with its CRC as U-Boot stores it, A/B slots
// with a bootcount fallback, and a Linux boot that ends in the sim demo
// application's console.
//
// What it models, from U-Boot's sources (https://source.denx.de/u-boot/u-boot:
// common/autoboot.c, common/xyzModem.c, cmd/load.c, cmd/mmc.c, cmd/sf.c,
// common/hash.c, boot/bootm.c, boot/image-fdt.c, include/image.h,
// drivers/bootcount/bootcount_env.c) and its documentation
// (https://docs.u-boot.org/en/latest/usage/cmdline.html):
//
//   - Boot: the banner ("U-Boot 2024.01 (...)", Model, DRAM, MMC lines),
//     "Loading Environment from MMC... OK" or "*** Warning - bad CRC, using
//     default environment", then "Hit any key to stop autoboot: N" counting
//     down in real seconds (Options.BootDelay shortens it for tests). A key
//     stops it (and is consumed); otherwise bootcmd runs.
//   - The console echoes what is typed, ends lines with CR LF and prompts
//     "=> " (Options.Prompt). An empty line repeats the last command if it
//     is repeatable, as U-Boot does; Ctrl-C discards the line
//     ("<INTERRUPT>"). A line keeps CONFIG_SYS_CBSIZE characters and
//     beeps at the rest (Options.LineMax); Options.RxFIFO makes typed
//     characters overflow like a polled UART's FIFO. Commands are parsed
//     as U-Boot's hush does, which is not POSIX: ';' (a failure does not
//     stop the rest), '&&' and '||' (a failure before '&&' skips to the
//     next ';'), $? , quotes, ${var} expanded when each command runs, run,
//     and name=value shell variables.
//   - Autoboot: bootdelay=-2 boots with no chance to stop it; a keyed
//     autoboot (Options.StopString) stops only on its stop string.
//   - Commands: help, version, echo, printenv, setenv (serial# is
//     write-once), saveenv, env default -a, loady (U-Boot's xyzModem
//     receiver, quirks included: no 'C' after block 0, 'C' as NAK, ACK ACK
//     C after EOT, 2 s character timeouts; "## Total Size" and "## Start
//     Addr" after it), crc32, md, mw, cmp, cp, mmc dev/info/read/write/
//     rescan, sf probe/erase/read/write, virtio/nvme/scsi/usb
//     scan|start/info/dev/read/write (Options.Block), protect and erase on
//     a CFI NOR flash (Options.CFIFlash; cp.b programs it, md, cmp and
//     crc32 read it in place), bootm, boot, run, reset, true, false;
//     anything else is "Unknown command 'x' - try 'help'". Numbers are
//     hexadecimal, as in U-Boot. The outputs of the shell, md, cmp, crc32,
//     loady and the storage commands are held against real U-Boot 2023.01
//     by a differential test (real_diff_test.go; FIDELITY.md lists each
//     promise and its check).
//   - bootm checks a legacy uImage as U-Boot does (magic 0x27051956, header
//     CRC, data CRC) and the device tree (magic 0xd00dfeed), printing "Wrong
//     Image Format for bootm command", "Bad Header Checksum", "Bad Data CRC"
//     or "ERROR: Did not find a cmdline Flattened Device Tree" / "Could not
//     find a valid device tree", then "Starting kernel ...".
//   - Linux prints a few lines (its version from the image name, the
//     device tree's model, the command line), mounts the root partition
//     named by root= in bootargs ("VFS: Unable to mount root fs on
//     unknown-block(179,N)" if it holds no file system, "No working init
//     found" if it is corrupt: both panic and reboot after panic=N
//     seconds), confirms the boot (upgrade_available=0, bootcount=0, as a
//     userland fw_setenv does) and runs the sim application console for the
//     root file system's descriptor. A kernel built for another board hangs
//     silently until the watchdog (Options.Watchdog) resets the unit.
//   - A/B fallback is U-Boot's own bootcount mechanism (CONFIG_BOOTCOUNT_LIMIT
//     with CONFIG_BOOTCOUNT_ENV): when upgrade_available=1 each boot
//     increments bootcount and saves the environment; once bootcount exceeds
//     bootlimit, U-Boot prints "Warning: Bootlimit (3) exceeded. Using
//     altbootcmd." and runs altbootcmd, which switches boot_slot to the
//     other slot, clears upgrade_available and boots it. bootcmd ends in
//     "reset", so a slot that fails in U-Boot is retried at once. With
//     upgrade_available=0 a broken slot boot-loops for ever: a bricked unit
//     that only a bench can recover.
//
// The unit's identity is serial#, which board code sets from OTP at every
// boot when the environment lacks it (Options.Serial).
package ubootsim

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// Version is the U-Boot version the model claims.
const (
	Version = "U-Boot 2024.01 (Jan 08 2024 - 15:37:48 +0000)"
	Prompt  = "=> "
)

// SlotImage says what a slot holds when the unit is built.
type SlotImage struct {
	Version string // kernel and application version; "" leaves the slot empty
	Fault   Fault  // how the slot is broken, if it is
}

// Options describe a unit.
type Options struct {
	Serial string // serial# in OTP; required
	// BootDelay is the autoboot countdown. 0 means 3 s; negative means no
	// autoboot (straight to the prompt), as bootdelay=-1 does. U-Boot counts
	// whole seconds: the countdown shows the delay rounded up.
	BootDelay time.Duration
	// StorageSize is the eMMC's capacity in bytes. 0 means 4 GiB.
	StorageSize int64
	// SPIFlash adds a 16 MiB SPI NOR flash (64 KiB erase sectors) for sf.
	SPIFlash bool
	// CFIFlash adds a 32 MiB CFI parallel NOR flash at CFIBase (protect,
	// erase, cp.b, and reads in place with md, cmp, crc32).
	CFIFlash bool
	// Block adds disks behind the block interfaces other than mmc
	// (virtio, nvme, scsi, usb), numbered per interface in order.
	Block []BlockDevice
	// Layout places the environment and the slots. The zero value means
	// DefaultLayout.
	Layout Layout
	// A and B say what the slots hold; BootSlot names the one boot_slot
	// selects ("a" if empty); UpgradeAvailable sets upgrade_available=1,
	// as an updater does after writing a new slot.
	A, B             SlotImage
	BootSlot         string
	UpgradeAvailable bool
	// Env overrides or adds variables in the stored environment.
	Env map[string]string
	// BadEnv stores a corrupt environment: U-Boot warns and uses its
	// default one.
	BadEnv bool
	// LoadyTimeout is how long loady waits for a sender
	// (CONFIG_CMD_LOADXY_TIMEOUT). 0 means 90 s.
	LoadyTimeout time.Duration
	// UARTClock is the console UART's input clock in Hz, from which a
	// rate asked for by loady ADDR BAUD is divided as the ns16550 driver
	// divides it (drivers/serial/ns16550.c, ns16550_calc_divisor:
	// DIV_ROUND_CLOSEST(clock, 16 * baud)): a rate the clock cannot
	// approach within a few percent leaves the UART deaf to the host.
	// 0 means the rate is met exactly.
	UARTClock int
	// LineMax is CONFIG_SYS_CBSIZE: the console keeps LineMax typed
	// characters a line and answers each one more with a bell (BEL),
	// then runs what it kept on Enter (common/cli_readline.c,
	// cread_add_char; real U-Boot 2023.01 in QEMU keeps 512, its
	// CBSIZE). 0 means 1024; Debian's qemu_arm64 build has 512, many
	// boards 256.
	LineMax int
	// RxFIFO, if set, is the depth of the UART's receive FIFO as the
	// command line sees it: U-Boot polls its UART (drivers/serial: no
	// interrupts), so what arrives while it handles one typed character
	// (echo, line editing) waits in the FIFO, and what does not fit is
	// lost. Stats.RxDropped counts the losses. loady's receive loop keeps
	// up with the line and is not affected.
	RxFIFO int
	// Prompt replaces the "=> " prompt (CONFIG_SYS_PROMPT).
	Prompt string
	// StopString makes autoboot keyed (CONFIG_AUTOBOOT_KEYED with
	// CONFIG_AUTOBOOT_STOP_STR, common/autoboot.c abortboot_key_sequence):
	// it prints "Autoboot in N seconds" and only this sequence, typed
	// within the delay, stops it; other keys are read and ignored.
	StopString string
	// PanicDelay, if set, replaces the panic=N seconds of the kernel
	// command line before a panicked kernel reboots (tests shorten it).
	PanicDelay time.Duration
	// Watchdog is how long a hung kernel runs before the watchdog resets
	// the unit. 0 means it hangs until the bench resets it.
	Watchdog time.Duration

	board string
}

// Stats counts what happened on a unit.
type Stats struct {
	Boots        int // U-Boot starts
	Autoboots    int // bootcmd or altbootcmd runs from autoboot
	AltBoots     int // altbootcmd runs
	KernelStarts int // "Starting kernel ..."
	AppStarts    int // the application console came up
	EnvSaves     int
	LoadyBytes   int // bytes the last loady stored
	LoadyRetries int // the last loady's retries (NAKs, timeouts)
	LoadyBaud    int // the UART rate the last loady received at
	RxDropped    int // typed characters lost to a full receive FIFO (Options.RxFIFO)
}

// Model is a simulated U-Boot board. Its storage persists across runs; its
// RAM is cleared at each power-on.
type Model struct {
	opts   Options
	layout Layout
	emmc   *Disk
	nor    *sim.Flash
	cfi    *sim.Flash
	blk    map[string][]*Disk

	mu    sync.Mutex
	ram   *sparse
	stats Stats
}

var _ sim.Model = (*Model)(nil)

// NOR flash geometry (a Winbond W25Q128 with 64 KiB sectors).
const (
	NORSize   = 16 << 20
	NORSector = 64 << 10
	norName   = "w25q128"
)

// New builds a unit of the named board (the device tree's model and the
// target its images must be built for): it lays down the slots' images and
// the environment on the eMMC as a factory (or a failed update) left them.
// A slot with a Fault makes a bricked unit.
func New(board string, o Options) (*Model, error) {
	if board == "" || o.Serial == "" {
		return nil, errors.New("ubootsim: a unit needs a board name and Options.Serial")
	}
	o.board = board
	if o.StorageSize == 0 {
		o.StorageSize = 4 << 30
	}
	l := o.Layout
	if l == (Layout{}) {
		l = DefaultLayout
	}
	if o.BootSlot == "" {
		o.BootSlot = l.A.Name
	}
	if _, ok := l.Slot(o.BootSlot); !ok {
		return nil, fmt.Errorf("ubootsim: boot slot %q is neither %q nor %q", o.BootSlot, l.A.Name, l.B.Name)
	}
	m := &Model{opts: o, layout: l, emmc: &Disk{newSparse(o.StorageSize)}, ram: newSparse(RAMSize)}
	if o.SPIFlash {
		m.nor = sim.NewFlash(0, sim.Uniform(NORSize/NORSector, NORSector))
	}
	if o.CFIFlash {
		m.cfi = newCFI()
	}
	m.blk = map[string][]*Disk{}
	for _, b := range o.Block {
		if _, known := blkIfaces[b.Iface]; !known || b.Size <= 0 || b.Size%BlockSize != 0 {
			return nil, fmt.Errorf("ubootsim: block device %q of %d bytes: want virtio, nvme, scsi or usb and a whole number of 512-byte blocks", b.Iface, b.Size)
		}
		m.blk[b.Iface] = append(m.blk[b.Iface], &Disk{newSparse(b.Size)})
	}
	for _, s := range []struct {
		slot Slot
		img  SlotImage
	}{{l.A, o.A}, {l.B, o.B}} {
		if err := m.install(s.slot, s.img); err != nil {
			return nil, err
		}
	}
	env := defaultEnv(o.board, l, m.bootDelaySeconds())
	env["boot_slot"] = o.BootSlot
	if o.UpgradeAvailable {
		env["upgrade_available"] = "1"
		env["bootcount"] = "0"
	}
	env["serial#"] = o.Serial
	for k, v := range o.Env {
		env[k] = v
	}
	if err := m.storeEnv(env); err != nil {
		return nil, err
	}
	if o.BadEnv {
		b, _ := m.emmc.Read(l.EnvOffset+100, 4)
		for i := range b {
			b[i] ^= 0x5A
		}
		m.emmc.WriteAt(b, l.EnvOffset+100)
	}
	return m, nil
}

// install writes a slot's images, broken as f says.
func (m *Model) install(s Slot, img SlotImage) error {
	if img.Version == "" || img.Fault == Empty {
		return nil
	}
	target := m.opts.board
	if img.Fault == WrongBoard {
		target = "other-board"
	}
	kernel, _, rootfs, err := SlotImages(img.Version, target, m.layout)
	if err != nil {
		return err
	}
	fdt := DeviceTree(m.opts.board, "unbrick,"+m.opts.board)
	switch img.Fault {
	case BadKernelMagic:
		kernel[0] ^= 0xFF
	case BadKernelHdr:
		kernel[40] ^= 0x01 // in the name: the header CRC no longer matches
	case BadKernelCRC:
		kernel[UImageHeader+1000] ^= 0x01
	case NoDeviceTree:
		fdt = nil
	case NoRootFS:
		rootfs = nil
	case CorruptRootFS:
		rootfs[len(rootfs)/2] ^= 0x01
	case Healthy, WrongBoard:
	default:
		return fmt.Errorf("ubootsim: unknown slot fault %q", img.Fault)
	}
	for _, w := range []struct {
		b   []byte
		off int64
	}{{kernel, s.Kernel}, {fdt, s.FDT}, {rootfs, s.RootFS}} {
		if err := m.emmc.WriteAt(w.b, w.off); err != nil {
			return fmt.Errorf("ubootsim: slot %s: %w", s.Name, err)
		}
	}
	return nil
}

func (m *Model) bootDelaySeconds() int {
	d := m.opts.BootDelay
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 3
	}
	return int(math.Ceil(d.Seconds()))
}

func (m *Model) storeEnv(env map[string]string) error {
	b, err := encodeEnv(env, int(m.layout.EnvSize))
	if err != nil {
		return err
	}
	return m.emmc.WriteAt(b, m.layout.EnvOffset)
}

// loadEnv reads the stored environment.
func (m *Model) loadEnv() (map[string]string, error) {
	b, err := m.emmc.Read(m.layout.EnvOffset, int(m.layout.EnvSize))
	if err != nil {
		return nil, err
	}
	return decodeEnv(b)
}

// EMMC returns the unit's eMMC, to inspect or damage it.
func (m *Model) EMMC() *Disk { return m.emmc }

// NOR returns the SPI NOR flash, nil without Options.SPIFlash.
func (m *Model) NOR() *sim.Flash { return m.nor }

// Layout returns where the environment and the slots live.
func (m *Model) Layout() Layout { return m.layout }

// Env returns the stored environment, or an error if its CRC is bad.
func (m *Model) Env() (map[string]string, error) { return m.loadEnv() }

// RAM returns n bytes of the unit's RAM at addr, as they are now.
func (m *Model) RAM(addr uint32, n int) ([]byte, error) {
	m.mu.Lock()
	ram := m.ram
	m.mu.Unlock()
	if addr < RAMBase {
		return nil, fmt.Errorf("ubootsim: address %#x below DRAM at %#x", addr, RAMBase)
	}
	return ram.Read(int64(addr-RAMBase), n)
}

// Stats returns the counters.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// uartRate is the rate the console UART runs at when baud is asked for.
func (m *Model) uartRate(baud int) int {
	clk := m.opts.UARTClock
	if clk == 0 || baud <= 0 {
		return baud
	}
	div := (clk + 8*baud) / (16 * baud) // DIV_ROUND_CLOSEST
	if div < 1 {
		div = 1
	}
	return clk / (16 * div)
}

func (m *Model) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// Run runs the unit from reset: U-Boot, then possibly Linux.
func (m *Model) Run(s *sim.Session) {
	s.SetBaud(consoleBaud)
	m.mu.Lock()
	if s.Cause == sim.PowerOn {
		m.ram = newSparse(RAMSize) // DRAM keeps its contents across a reset, not a power cycle
	}
	m.stats.Boots++
	m.mu.Unlock()
	u := &uboot{m: m, s: s, locals: map[string]string{}}
	u.run()
}

// Board returns the board the unit is.
func (m *Model) Board() string { return m.opts.board }

// Serial returns the serial number in the unit's OTP.
func (m *Model) Serial() string { return m.opts.Serial }
