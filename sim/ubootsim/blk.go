package ubootsim

import (
	"fmt"
	"strconv"
	"time"
)

// BlockDevice is a disk behind one of U-Boot's block interfaces other than
// mmc, which all share cmd/blk_common.c's command shape.
type BlockDevice struct {
	Iface string // "virtio", "nvme", "scsi" or "usb"
	Size  int64  // bytes, a multiple of 512
}

// blkIfaces are the interfaces Options.Block may name, with what each
// device calls itself in "<if> dev N" and "<if> info" (disk/part.c
// dev_print). The descriptions are those real U-Boot 2023.01 prints for
// QEMU's virtio-blk, NVMe and AHCI disks; usb's is from
// common/usb_storage.c and has not been seen on a real console here
// (Debian's qemu_arm64 U-Boot finds no USB controller in QEMU).
var blkIfaces = map[string]string{
	"virtio": "QEMU VirtIO Block Device",
	"nvme":   "Vendor: 0x1b36 Rev: 7.2.22   Prod: unbrick1            ",
	"scsi":   "(0:%d) Vendor: ATA Prod.: QEMU HARDDISK Rev: 2.5+",
	"usb":    "Vendor: Generic  Rev: 1.00 Prod: Mass Storage",
}

// Block returns disk n of interface iface (Options.Block), or nil.
func (m *Model) Block(iface string, n int) *Disk {
	if d := m.blk[iface]; n >= 0 && n < len(d) {
		return d[n]
	}
	return nil
}

// blkUsage is the usage text of the block interface commands.
const blkUsage = `info - show available devices
%[1]s device [dev] - show or set current device
%[1]s part [dev] - print partition table of one or all devices
%[1]s read  addr blk# cnt
%[1]s write addr blk# cnt`

// blkCapacity prints a capacity as disk/part.c's dev_print does: tenths
// of MB and GB, rounded down, then the block count.
func blkCapacity(d *Disk) string {
	lba := d.Blocks()
	mb := lba * 10 >> 11
	gb := mb / 1024
	return fmt.Sprintf("%d.%d MB = %d.%d GB (%d x 512)", mb/10, mb%10, gb/10, gb%10, lba)
}

func (u *uboot) blkDesc(iface string, n int) string {
	desc := blkIfaces[iface]
	if iface == "scsi" {
		desc = fmt.Sprintf(desc, n)
	}
	return fmt.Sprintf("Device %d: %s\n            Type: Hard Disk\n            Capacity: %s\n", n, desc, blkCapacity(u.m.Block(iface, n)))
}

// blk runs "<if> scan|start|info|dev|read|write" (cmd/blk_common.c,
// cmd/virtio.c, cmd/nvme.c, cmd/scsi.c, cmd/usb.c), with the output real
// U-Boot 2023.01 prints for virtio, nvme and scsi (the differential test
// holds it).
func (u *uboot) blk(args []string) int {
	iface := args[0]
	if len(args) < 2 {
		return usage
	}
	if iface == "usb" && args[1] != "start" && !u.scanned[iface] {
		u.out("USB is stopped. Please issue 'usb start' first.\n")
		return fail
	}
	devs := u.m.blk[iface]
	// scsi and usb know their disks only after a scan; virtio and nvme
	// devices are bound at boot on the boards modelled.
	known := func(n int) bool {
		return n >= 0 && n < len(devs) && (u.scanned[iface] || iface == "virtio" || iface == "nvme")
	}
	switch args[1] {
	case "scan", "start":
		if (args[1] == "start") != (iface == "usb") || len(args) != 2 {
			return usage
		}
		u.scanned[iface] = true
		switch iface {
		case "scsi":
			u.out("scanning bus for devices...\n")
			for i := range devs {
				u.out("  %s", u.blkDesc(iface, i))
			}
		case "usb":
			u.out("starting USB...\n")
			u.out("       scanning usb for storage devices... %d Storage Device(s) found\n", len(devs))
		}
		return ok
	case "info":
		for i := range devs {
			if known(i) {
				u.out("%s", u.blkDesc(iface, i))
			}
		}
		return ok
	case "dev", "device":
		if len(args) != 3 {
			return usage
		}
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return usage
		}
		if !known(n) {
			u.out("\nDevice %d: unknown device\n", n)
			return fail
		}
		u.cur[iface] = n
		u.out("\n%s... is now current device\n", u.blkDesc(iface, n))
		return ok
	case "read", "write":
		if len(args) != 5 {
			return usage
		}
		v, good := hexArgs(args[2:])
		if !good {
			return usage
		}
		addr, blk, cnt := v[0], v[1], v[2]
		read := args[1] == "read"
		n := u.cur[iface]
		u.out("\n%s %s: device %d block # %d, count %d ... ", iface, args[1], n, blk, cnt)
		word := map[bool]string{true: "read", false: "written"}[read]
		var done int64
		switch d := u.m.Block(iface, n); {
		case !known(n):
			done = -19 // -ENODEV, as real U-Boot prints for a missing device
		case blk+cnt > uint64(d.Blocks()) || blk+cnt < blk:
			done = -5 // -EIO: real U-Boot's virtio past the disk's end
		default:
			u.transfer(d, addr, blk, cnt, read)
			done = int64(cnt)
		}
		if done != int64(cnt) {
			u.out("%d blocks %s: ERROR\n", done, word)
			return fail
		}
		u.out("%d blocks %s: OK\n", done, word)
		return ok
	}
	return usage
}

// transfer moves cnt blocks between RAM at addr and disk d from block blk
// (to RAM when read), taking the model's 40 MiB/s to read and 20 MiB/s to
// write: what mmc and the block commands (virtio, nvme, scsi, usb) share.
func (u *uboot) transfer(d *Disk, addr, blk, cnt uint64, read bool) {
	off := u.mem(addr, cnt*BlockSize)
	if read {
		d.s.copyTo(u.ram, off, int64(blk*BlockSize), int64(cnt*BlockSize))
		u.busy(time.Duration(cnt*BlockSize) * time.Second / (40 << 20))
		return
	}
	u.ram.copyTo(d.s, int64(blk*BlockSize), off, int64(cnt*BlockSize))
	u.busy(time.Duration(cnt*BlockSize) * time.Second / (20 << 20))
}
