package ubootsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

// The environment is stored as U-Boot stores it (include/env_internal.h,
// env_t without CONFIG_SYS_REDUNDAND_ENVIRONMENT): a CRC-32 in the CPU's
// byte order (little-endian here), then "name=value" strings each ended by
// a NUL, sorted by name, an empty string to end them, and zeros to fill
// CONFIG_ENV_SIZE. The CRC covers everything after itself.

var errEnvCRC = errors.New("bad CRC")

// encodeEnv returns the stored form of env in size bytes.
func encodeEnv(env map[string]string, size int) ([]byte, error) {
	b := make([]byte, 4, size)
	for _, k := range sortedKeys(env) {
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, env[k]...)
		b = append(b, 0)
	}
	b = append(b, 0)
	if len(b) > size {
		return nil, fmt.Errorf("environment of %d bytes does not fit in %d", len(b), size)
	}
	b = b[:size]
	binary.LittleEndian.PutUint32(b, crc32.ChecksumIEEE(b[4:]))
	return b, nil
}

// decodeEnv reads a stored environment.
func decodeEnv(b []byte) (map[string]string, error) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != crc32.ChecksumIEEE(b[4:]) {
		return nil, errEnvCRC
	}
	env := map[string]string{}
	for rest := b[4:]; len(rest) > 0 && rest[0] != 0; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			i = len(rest)
		}
		if k, v, ok := strings.Cut(string(rest[:i]), "="); ok {
			env[k] = v
		}
		rest = rest[min(i+1, len(rest)):]
	}
	return env, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Addresses in the board's DRAM the default environment uses.
const (
	RAMBase     = 0x80000000
	RAMSize     = 512 << 20
	KernelAddr  = 0x82000000 // kernel_addr_r, loadaddr
	FDTAddr     = 0x88000000 // fdt_addr_r
	consoleBaud = 115200
)

// defaultEnv is the environment compiled into the model's U-Boot: what it
// uses when the stored one is missing or corrupt. bootcmd boots the slot
// named by boot_slot; with upgrade_available=1 the bootcount mechanism
// (CONFIG_BOOTCOUNT_LIMIT with CONFIG_BOOTCOUNT_ENV) counts boots, and once
// bootcount exceeds bootlimit U-Boot runs altbootcmd, which switches to the
// other slot, clears upgrade_available and boots.
func defaultEnv(board string, l Layout, bootdelay int) map[string]string {
	blk := func(off int64) string { return fmt.Sprintf("%#x", off/BlockSize) }
	env := map[string]string{
		"arch":              "arm",
		"baudrate":          fmt.Sprint(consoleBaud),
		"board":             board,
		"board_name":        board,
		"boot_slot":         l.A.Name,
		"bootdelay":         fmt.Sprint(bootdelay),
		"bootlimit":         "3",
		"upgrade_available": "0",
		"console":           fmt.Sprintf("ttyS0,%d", consoleBaud),
		"kernel_addr_r":     fmt.Sprintf("%#x", KernelAddr),
		"fdt_addr_r":        fmt.Sprintf("%#x", FDTAddr),
		"loadaddr":          fmt.Sprintf("%#x", KernelAddr),
		"kernel_cnt":        blk(l.KernelMax),
		"fdt_cnt":           blk(l.FDTMax),
		"stdin":             "serial",
		"stdout":            "serial",
		"stderr":            "serial",
		"bootcmd": "run slot_${boot_slot}; mmc dev 0; " +
			"mmc read ${kernel_addr_r} ${kernel_blk} ${kernel_cnt}; " +
			"mmc read ${fdt_addr_r} ${fdt_blk} ${fdt_cnt}; " +
			"setenv bootargs console=${console} root=/dev/mmcblk0p${root_part} rootwait panic=5; " +
			"bootm ${kernel_addr_r} - ${fdt_addr_r}; reset",
		"altbootcmd": "run alt_${boot_slot}; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd",
	}
	for _, s := range []struct{ this, other Slot }{{l.A, l.B}, {l.B, l.A}} {
		env["slot_"+s.this.Name] = fmt.Sprintf("setenv kernel_blk %s; setenv fdt_blk %s; setenv root_part %d",
			blk(s.this.Kernel), blk(s.this.FDT), s.this.RootPart)
		env["alt_"+s.this.Name] = "setenv boot_slot " + s.other.Name
	}
	return env
}
