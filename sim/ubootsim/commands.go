package ubootsim

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
	"time"
)

// command is one U-Boot command.
type command struct {
	desc  string // the one-line help
	usage string // the arguments, for "Usage:"
	run   func(u *uboot, args []string) int
}

// Command results.
const (
	ok    = 0
	fail  = 1
	usage = -1 // CMD_RET_USAGE: print the usage, fail
)

var commands map[string]command

func init() {
	commands = map[string]command{
		"help":     {"print command description/usage", "[command ...]", (*uboot).help},
		"?":        {"alias for 'help'", "[command ...]", (*uboot).help},
		"version":  {"print monitor, compiler and linker version", "", (*uboot).version},
		"echo":     {"echo args to console", "[args..]", (*uboot).echo},
		"printenv": {"print environment variables", "[name ...]", (*uboot).printenv},
		"setenv":   {"set environment variables", "name value ...\n    - set environment variable 'name' to 'value ...'\nsetenv name\n    - delete environment variable 'name'", (*uboot).setenv},
		"saveenv":  {"save environment variables to persistent storage", "", func(u *uboot, _ []string) int { return u.saveenv() }},
		"env":      {"environment handling commands", "default -a - [forcibly] reset default environment", (*uboot).envCmd},
		"loady":    {"load binary file over serial line (ymodem mode)", "[addr [baud]]\n    - load binary file over serial line at address 'addr' with baudrate 'baud'", func(u *uboot, a []string) int { return u.loadxy(a, true) }},
		"loadx":    {"load binary file over serial line (xmodem mode)", "[addr [baud]]\n    - load binary file over serial line at address 'addr' with baudrate 'baud'", func(u *uboot, a []string) int { return u.loadxy(a, false) }},
		"crc32":    {"checksum calculation", "address count [addr]\n    - compute CRC32 checksum [save at addr]", (*uboot).crc32},
		"md":       {"memory display", "[.b, .w, .l] address [# of objects]", (*uboot).md},
		"mw":       {"memory write (fill)", "[.b, .w, .l] address value [count]", (*uboot).mw},
		"cmp":      {"memory compare", "[.b, .w, .l] addr1 addr2 count", (*uboot).cmp},
		"cp":       {"memory copy", "[.b, .w, .l] source target count", (*uboot).cp},
		"protect":  {"enable or disable FLASH write protection", "on  start end\n    - protect FLASH from addr 'start' to addr 'end'\nprotect on start +len\n    - protect FLASH from addr 'start' to end of sect w/addr 'start'+'len'-1\nprotect off start end\n    - make FLASH from addr 'start' to addr 'end' writable\nprotect off start +len\n    - make FLASH from addr 'start' to end of sect w/addr 'start'+'len'-1 wrtable", (*uboot).protect},
		"erase":    {"erase FLASH memory", "start end\n    - erase FLASH from addr 'start' to addr 'end'\nerase start +len\n    - erase FLASH from addr 'start' to the end of sect w/addr 'start'+'len'-1", (*uboot).erase},
		"virtio":   {"virtio block devices sub-system", fmt.Sprintf("scan - initialize virtio bus\nvirtio "+blkUsage, "virtio"), (*uboot).blk},
		"nvme":     {"NVM Express sub-system", fmt.Sprintf("scan - scan NVMe devices\nnvme "+blkUsage, "nvme"), (*uboot).blk},
		"scsi":     {"SCSI sub-system", fmt.Sprintf("scan - (re-)scan SCSI bus\nscsi "+blkUsage, "scsi"), (*uboot).blk},
		"usb":      {"USB sub-system", fmt.Sprintf("start - start (scan) USB controller\nusb "+blkUsage, "usb"), (*uboot).blk},
		"mmc":      {"MMC sub system", mmcUsage, (*uboot).mmc},
		"sf":       {"SPI flash sub-system", sfUsage, (*uboot).sfCmd},
		"bootm":    {"boot application image from memory", "[addr [arg ...]]\n    - boot application image stored in memory", (*uboot).bootm},
		"boot":     {"boot default, i.e., run 'bootcmd'", "", func(u *uboot, _ []string) int { return u.runLine(u.env["bootcmd"]) }},
		"run":      {"run commands in an environment variable", "var [...]\n    - run the commands in the environment variable(s) 'var'", (*uboot).runCmd},
		"reset":    {"Perform RESET of the CPU", "", func(u *uboot, _ []string) int { u.reset(); return ok }},
		"true":     {"do nothing, successfully", "", func(*uboot, []string) int { return ok }},
		"false":    {"do nothing, unsuccessfully", "", func(*uboot, []string) int { return fail }},
	}
}

const mmcUsage = `info - display info of the current MMC device
mmc read addr blk# cnt
mmc write addr blk# cnt
mmc rescan
mmc dev [dev] [part] - show or set current mmc device [partition]
mmc list - lists available devices`

const sfUsage = `probe [[bus:]cs] [hz] [mode]	- init flash device on given SPI bus
				  and chip select
sf read addr offset|partition len	- read ` + "`len'" + ` bytes starting at
				          ` + "`offset'" + ` to memory at ` + "`addr'" + `
sf write addr offset|partition len	- write ` + "`len'" + ` bytes from memory
				          at ` + "`addr'" + ` to flash at ` + "`offset'" + `
sf erase offset|partition [+]len	- erase ` + "`len'" + ` bytes from ` + "`offset'" + `
					 ` + "`+len'" + ` round up ` + "`len'" + ` to block size`

// find returns the command named name: exactly, or the only one it is a
// prefix of, as U-Boot's find_cmd allows. A ".b"-style suffix is ignored.
func find(name string) (string, command, bool) {
	base, _, _ := strings.Cut(name, ".")
	if c, ok := commands[base]; ok {
		return base, c, true
	}
	var hit string
	for k := range commands {
		if strings.HasPrefix(k, base) {
			if hit != "" {
				return "", command{}, false
			}
			hit = k
		}
	}
	if hit == "" {
		return "", command{}, false
	}
	return hit, commands[hit], true
}

// command runs one command.
func (u *uboot) command(args []string) int {
	name, c, found := find(args[0])
	if !found || args[0] == "" {
		u.out("Unknown command '%s' - try 'help'\n", args[0])
		return fail
	}
	switch r := c.run(u, args); r {
	case usage:
		u.out("%s - %s\n\nUsage:\n%s %s\n", name, c.desc, name, c.usage)
		return fail
	default:
		return r
	}
}

func (u *uboot) help(args []string) int {
	if len(args) > 1 {
		st := ok
		for _, a := range args[1:] {
			name, c, found := find(a)
			if !found {
				u.out("Unknown command '%s' - try 'help' without arguments for list of all known commands\n\n", a)
				st = fail
				continue
			}
			u.out("%s - %s\n\nUsage:\n%s %s\n", name, c.desc, name, c.usage)
		}
		return st
	}
	names := make([]string, 0, len(commands))
	for k := range commands {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		u.out("%-10s- %s\n", k, commands[k].desc)
	}
	return ok
}

func (u *uboot) version([]string) int {
	u.out("\n%s\n\narm-linux-gnueabihf-gcc (GCC) 12.3.0\nGNU ld (GNU Binutils) 2.40\n", Version)
	return ok
}

func (u *uboot) echo(args []string) int {
	u.out("%s\n", strings.Join(args[1:], " "))
	return ok
}

func (u *uboot) printenv(args []string) int {
	if len(args) > 1 {
		st := ok
		for _, k := range args[1:] {
			v, found := u.env[k]
			if !found {
				u.out("## Error: \"%s\" not defined\n", k)
				st = fail
				continue
			}
			u.out("%s=%s\n", k, v)
		}
		return st
	}
	size := 0
	for _, k := range sortedKeys(u.env) {
		u.out("%s=%s\n", k, u.env[k])
		size += len(k) + len(u.env[k]) + 2
	}
	u.out("\nEnvironment size: %d/%d bytes\n", size, u.m.layout.EnvSize-4)
	return ok
}

// writeOnce are the variables U-Boot's env flags protect once set
// (CONFIG_ENV_OVERWRITE unset).
var writeOnce = map[string]bool{"serial#": true, "ethaddr": true}

func (u *uboot) setenv(args []string) int {
	if len(args) < 2 {
		return usage
	}
	name := args[1]
	if strings.ContainsAny(name, "=") {
		u.out("## Error: illegal character '=' in variable name \"%s\"\n", name)
		return fail
	}
	if _, set := u.env[name]; set && writeOnce[name] {
		u.out("## Error: Can't overwrite \"%s\"\n## Error inserting \"%s\" variable, errno=1\n", name, name)
		return fail
	}
	if len(args) == 2 {
		delete(u.env, name)
		return ok
	}
	u.env[name] = strings.Join(args[2:], " ")
	return ok
}

func (u *uboot) saveenv() int {
	u.out("Saving Environment to MMC... Writing to MMC(0)... ")
	if err := u.m.storeEnv(u.env); err != nil {
		u.out("failed (%v)\n", err)
		return fail
	}
	u.busy(20 * time.Millisecond)
	u.m.count(func(s *Stats) { s.EnvSaves++ })
	u.out("OK\n")
	return ok
}

func (u *uboot) envCmd(args []string) int {
	if len(args) == 3 && args[1] == "default" && args[2] == "-a" {
		u.out("## Resetting to default environment\n")
		u.env = defaultEnv(u.m.opts.board, u.m.layout, u.m.bootDelaySeconds())
		return ok
	}
	return usage
}

func (u *uboot) runCmd(args []string) int {
	if len(args) < 2 {
		return usage
	}
	for _, v := range args[1:] {
		cmd, found := u.env[v]
		if !found {
			u.out("## Error: \"%s\" not defined\n", v)
			return fail
		}
		if u.runLine(cmd) != ok {
			return fail
		}
	}
	return ok
}

// hex parses a U-Boot number: hexadecimal, with or without 0x.
func hex(s string) (uint64, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// hexArgs parses args as hexadecimal numbers.
func hexArgs(args []string) ([]uint64, bool) {
	v := make([]uint64, len(args))
	for i, a := range args {
		n, good := hex(a)
		if !good {
			return nil, false
		}
		v[i] = n
	}
	return v, true
}

// mem returns the RAM offset of [addr, addr+n), or crashes the unit as an
// access outside DRAM does.
func (u *uboot) mem(addr, n uint64) int64 {
	if addr < RAMBase || addr+n > RAMBase+RAMSize || addr+n < addr {
		u.out("data abort\npc : [<9ff6a3c0>]\t   lr : [<9ff6a2b4>]\nreloc pc : [<8780f3c0>]\t   lr : [<8780f2b4>]\n")
		u.out("Code: e5933000 e3530000 0a000003 e5823000 (e5913000)\nResetting CPU ...\n\n")
		u.reset()
	}
	return int64(addr - RAMBase)
}

// readRAM reads memory: RAM, or the CFI flash where it is mapped (reads
// in place, as on the bus).
func (u *uboot) readRAM(addr uint64, n int) []byte {
	if u.inCFI(addr, uint64(n)) {
		b, _ := u.m.cfi.Read(uint32(addr), n)
		return b
	}
	b, _ := u.ram.Read(u.mem(addr, uint64(n)), n)
	return b
}

func (u *uboot) writeRAM(addr uint64, b []byte) {
	u.ram.WriteAt(b, u.mem(addr, uint64(len(b))))
}

func (u *uboot) crc32(args []string) int {
	if len(args) < 3 {
		return usage
	}
	v, good := hexArgs(args[1:])
	if !good {
		return usage
	}
	addr, n := v[0], v[1]
	crc := crc32.NewIEEE()
	if u.inCFI(addr, n) {
		b, _ := u.m.cfi.Read(uint32(addr), int(n))
		crc.Write(b)
	} else {
		off := u.mem(addr, n)
		buf := make([]byte, chunkSize)
		for done := uint64(0); done < n; {
			k := min(n-done, chunkSize)
			u.ram.ReadAt(buf[:k], off+int64(done))
			crc.Write(buf[:k])
			done += k
		}
	}
	u.out("crc32 for %08x ... %08x ==> %08x\n", addr, addr+n-1, crc.Sum32())
	if len(v) > 2 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], crc.Sum32())
		u.writeRAM(v[2], b[:])
	}
	return ok
}

// cmp compares count units at two RAM addresses as cmd/mem.c's do_mem_cmp
// does: the first difference ("byte at 0x... (0x1) != byte at 0x...
// (0x5a)"), then "Total of N byte(s) were the same"; it fails on a
// difference.
func (u *uboot) cmp(args []string) int {
	if len(args) < 4 {
		return usage
	}
	v, good := hexArgs(args[1:4])
	if !good {
		return usage
	}
	w := width(args[0])
	names := map[int]string{1: "byte", 2: "halfword", 4: "word", 8: "double word"}
	a := u.readRAM(v[0], int(v[2])*w)
	b := u.readRAM(v[1], int(v[2])*w)
	same := uint64(0)
	for ; same < v[2]; same++ {
		x, y := leUnit(a[same*uint64(w):], w), leUnit(b[same*uint64(w):], w)
		if x != y {
			u.out("%s at 0x%08x (%s) != %s at 0x%08x (%s)\n", names[w], v[0]+same*uint64(w), altHex(x, 2*w), names[w], v[1]+same*uint64(w), altHex(y, 2*w))
			break
		}
	}
	u.out("Total of %d %s(s) were the same\n", same, names[w])
	if same != v[2] {
		return fail
	}
	return ok
}

// leUnit reads a little-endian unit of w bytes.
func leUnit(b []byte, w int) uint64 {
	var x uint64
	for j := w - 1; j >= 0; j-- {
		x = x<<8 | uint64(b[j])
	}
	return x
}

// altHex prints x as C's "%#0*lx" with width n does: 0x, then the digits
// zero-padded so that the whole takes n characters.
func altHex(x uint64, n int) string {
	return fmt.Sprintf("0x%0*x", max(1, n-2), x)
}

// width returns the unit size of a .b/.w/.l/.q suffixed command.
func width(name string) int {
	switch {
	case strings.HasSuffix(name, ".b"):
		return 1
	case strings.HasSuffix(name, ".w"):
		return 2
	case strings.HasSuffix(name, ".q"):
		return 8
	}
	return 4
}

func (u *uboot) md(args []string) int {
	if len(args) < 2 {
		return usage
	}
	v, good := hexArgs(args[1:])
	if !good {
		return usage
	}
	w := width(args[0])
	count := uint64(0x40)
	if len(v) > 1 {
		count = v[1]
	}
	count = min(count, 0x1000/uint64(w))
	data := u.readRAM(v[0], int(count)*w)
	for line := 0; line < len(data); line += 16 {
		chunk := data[line:min(line+16, len(data))]
		var sb strings.Builder
		fmt.Fprintf(&sb, "%08x:", v[0]+uint64(line))
		for i := 0; i+w <= len(chunk); i += w {
			var x uint64
			for j := w - 1; j >= 0; j-- {
				x = x<<8 | uint64(chunk[i+j])
			}
			fmt.Fprintf(&sb, " %0*x", 2*w, x)
		}
		// lib/display_options.c, print_buffer: a short last line is padded
		// to the full width, then two spaces and the characters (as real
		// U-Boot 2023.01 prints them: the differential test holds this).
		sb.WriteString(strings.Repeat(" ", (16-len(chunk))/w*(2*w+1)))
		sb.WriteString("  ")
		for _, c := range chunk {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			sb.WriteByte(c)
		}
		u.out("%s\n", sb.String())
	}
	return ok
}

func (u *uboot) mw(args []string) int {
	if len(args) < 3 {
		return usage
	}
	v, good := hexArgs(args[1:])
	if !good {
		return usage
	}
	w := width(args[0])
	count := uint64(1)
	if len(v) > 2 {
		count = v[2]
	}
	unit := make([]byte, w)
	for j := range w {
		unit[j] = byte(v[1] >> (8 * j))
	}
	off := u.mem(v[0], count*uint64(w))
	buf := make([]byte, 0, chunkSize)
	for done := uint64(0); done < count*uint64(w); {
		buf = buf[:0]
		for len(buf)+w <= chunkSize && done+uint64(len(buf)) < count*uint64(w) {
			buf = append(buf, unit...)
		}
		u.ram.WriteAt(buf, off+int64(done))
		done += uint64(len(buf))
	}
	return ok
}

func (u *uboot) mmc(args []string) int {
	if len(args) < 2 {
		return usage
	}
	d := u.m.emmc
	switch args[1] {
	case "info":
		u.out("Device: mmc@2190000\nManufacturer ID: 15\nOEM: 100\nName: 8GTF4R \nBus Speed: 52000000\nMode: MMC High Speed (52MHz)\n")
		u.out("Rd Block Len: 512\nMMC version 5.1\nHigh Capacity: Yes\nCapacity: %s\nBus Width: 8-bit\nErase Group Size: 512 KiB\n", sizeString(d.Size()))
		return ok
	case "rescan":
		return ok
	case "list":
		u.out("mmc@2190000: 0 (eMMC)\n")
		return ok
	case "dev":
		dev := 0
		if len(args) > 2 {
			n, err := strconv.Atoi(args[2])
			if err != nil {
				return usage
			}
			dev = n
		}
		if dev != 0 {
			u.out("MMC Device %d not found\nno mmc device at slot %x\n", dev, dev)
			return fail
		}
		u.out("switch to partitions #0, OK\nmmc0(part 0) is current device\n")
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
		u.out("\nMMC %s: dev # 0, block # %d, count %d ... ", args[1], blk, cnt)
		n := cnt
		if blk+cnt > uint64(d.Blocks()) || blk+cnt < blk {
			u.out("MMC: block number %#x exceeds max(%#x)\n", blk+cnt, d.Blocks())
			n = 0
		} else {
			u.transfer(d, addr, blk, cnt, read)
		}
		word := "written"
		if read {
			word = "read"
		}
		result := "OK"
		if n != cnt {
			result = "ERROR"
		}
		u.out("%d blocks %s: %s\n", n, word, result)
		if n != cnt {
			return fail
		}
		return ok
	}
	return usage
}

// sizeString prints a size as U-Boot's print_size does.
func sizeString(n int64) string {
	units := []string{"Bytes", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d Bytes", n)
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// cHex prints v as C's "%#x" does: no prefix for zero.
func cHex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

func (u *uboot) sfCmd(args []string) int {
	if len(args) < 2 {
		return usage
	}
	f := u.m.nor
	if args[1] == "probe" {
		if f == nil {
			u.out("Failed to initialize SPI flash at 0:0 (error -19)\n")
			return fail
		}
		u.sf = true
		u.out("SF: Detected %s with page size 256 Bytes, erase size %s, total %s\n", norName, sizeString(NORSector), sizeString(NORSize))
		return ok
	}
	if !u.sf {
		u.out("No SPI flash selected. Please run `sf probe'\n")
		return fail
	}
	switch args[1] {
	case "read", "write":
		if len(args) != 5 {
			return usage
		}
		v, good := hexArgs(args[2:])
		if !good {
			return usage
		}
		addr, off, n := v[0], v[1], v[2]
		if off+n > NORSize {
			u.out("ERROR: attempting %s past flash size (%#x)\n", args[1], NORSize)
			return fail
		}
		ramOff := u.mem(addr, n)
		if args[1] == "read" {
			b, _ := f.Read(uint32(off), int(n))
			u.ram.WriteAt(b, ramOff)
			u.out("SF: %d bytes @ %s Read: OK\n", n, cHex(off))
			return ok
		}
		b, _ := u.ram.Read(ramOff, int(n))
		f.Program(uint32(off), b)
		u.busy(time.Duration(n) * 1500 * time.Nanosecond) // page program, about 0.4 ms per 256 bytes
		u.out("SF: %d bytes @ %s Written: OK\n", n, cHex(off))
		return ok
	case "erase":
		if len(args) != 4 {
			return usage
		}
		off, good1 := hex(args[2])
		lenArg := args[3]
		round := strings.HasPrefix(lenArg, "+")
		n, good2 := hex(strings.TrimPrefix(lenArg, "+"))
		if !good1 || !good2 {
			return usage
		}
		if round {
			n = (n + NORSector - 1) / NORSector * NORSector
		}
		if off+n > NORSize {
			u.out("ERROR: attempting %s past flash size (%#x)\n", args[1], NORSize)
			return fail
		}
		if off%NORSector != 0 || n%NORSector != 0 {
			u.out("SF: Erase offset/length not multiple of erase size\nSF: %d bytes @ %s Erased: ERROR\n", n, cHex(off))
			return fail
		}
		for a := off; a < off+n; a += NORSector {
			f.EraseUnit(int(a / NORSector))
			u.busy(150 * time.Millisecond) // typical 64 KiB block erase
		}
		u.out("SF: %d bytes @ %s Erased: OK\n", n, cHex(off))
		return ok
	}
	return usage
}
