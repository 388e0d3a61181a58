package ubootsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/unbrick/unbrick/sim"
)

// Legacy uImage header (U-Boot include/image.h, struct legacy_img_hdr):
// 64 bytes, every field big-endian.
//
//	0  ih_magic  0x27051956
//	4  ih_hcrc   CRC-32 of the header with this field zero
//	8  ih_time   creation time
//	12 ih_size   data size
//	16 ih_load   load address
//	20 ih_ep     entry point
//	24 ih_dcrc   CRC-32 of the data
//	28 ih_os, ih_arch, ih_type, ih_comp (one byte each)
//	32 ih_name   32 bytes, NUL-padded
const (
	UImageMagic  = 0x27051956
	UImageHeader = 64
	ihOSLinux    = 5
	ihArchARM    = 2
	ihTypeKernel = 2
	ihCompNone   = 0
	kernelLoad   = 0x80008000
	kernelTime   = 1704700000 // 2024-01-08, the U-Boot release the model claims
)

// FDTMagic starts a flattened device tree (devicetree.org specification,
// "Flattened Devicetree (DTB) Format").
const FDTMagic = 0xd00dfeed

// squashfsMagic starts a squashfs superblock ("hsqs" little-endian).
const squashfsMagic = 0x73717368

// Where the sim app descriptor sits in the images (sim.BuildApp): in the
// kernel after the zImage header, in the root file system after the 96-byte
// squashfs superblock.
const (
	kernelDesc = UImageHeader + 0x200
	rootfsDesc = 96
)

// Image problems as bootm and Linux report them.
var (
	ErrBadMagic     = errors.New("not a legacy uImage (bad magic)")
	ErrBadHeaderCRC = errors.New("uImage header CRC does not match")
	ErrBadDataCRC   = errors.New("uImage data CRC does not match")
	ErrNoFDT        = errors.New("not a flattened device tree")
)

// Kernel describes a legacy uImage holding a Linux kernel.
type Kernel struct {
	Name    string // ih_name, "Linux-<version>"
	Version string // the version from the name
	Size    int    // data bytes after the header
	Load    uint32
	Entry   uint32
	DataCRC uint32
	App     sim.AppDescriptor // the sim descriptor inside the data: version and target board
}

// KernelImage builds a legacy uImage of size bytes in all (header
// included) holding a stand-in ARM zImage for the target board: the header
// names it "Linux-<version>", and the data carries the sim app descriptor.
func KernelImage(version, target string, size int) ([]byte, error) {
	if len("Linux-"+version) > 32 {
		return nil, fmt.Errorf("ubootsim: kernel version %q too long for the 32-byte image name", version)
	}
	if size < kernelDesc+sim.DescriptorSize {
		return nil, fmt.Errorf("ubootsim: a kernel image needs at least %d bytes, not %d", kernelDesc+sim.DescriptorSize, size)
	}
	zimage := make([]byte, 0x30)
	binary.LittleEndian.PutUint32(zimage[0x24:], 0x016f2818) // zImage magic
	data, err := sim.BuildApp(zimage, kernelDesc-UImageHeader, size-UImageHeader, version, target)
	if err != nil {
		return nil, err
	}
	img := make([]byte, UImageHeader, size)
	h := img
	binary.BigEndian.PutUint32(h[0:], UImageMagic)
	binary.BigEndian.PutUint32(h[8:], kernelTime)
	binary.BigEndian.PutUint32(h[12:], uint32(len(data)))
	binary.BigEndian.PutUint32(h[16:], kernelLoad)
	binary.BigEndian.PutUint32(h[20:], kernelLoad)
	binary.BigEndian.PutUint32(h[24:], crc32.ChecksumIEEE(data))
	h[28], h[29], h[30], h[31] = ihOSLinux, ihArchARM, ihTypeKernel, ihCompNone
	copy(h[32:64], "Linux-"+version)
	binary.BigEndian.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return append(img, data...), nil
}

// ParseKernel checks a uImage as bootm does: magic, header CRC, then data
// CRC. It returns what it could read along with the first problem.
func ParseKernel(b []byte) (Kernel, error) {
	if len(b) < UImageHeader || binary.BigEndian.Uint32(b) != UImageMagic {
		return Kernel{}, ErrBadMagic
	}
	h := append([]byte(nil), b[:UImageHeader]...)
	hcrc := binary.BigEndian.Uint32(h[4:])
	binary.BigEndian.PutUint32(h[4:], 0)
	if crc32.ChecksumIEEE(h) != hcrc {
		return Kernel{}, ErrBadHeaderCRC
	}
	k := Kernel{
		Name:    cstr(h[32:64]),
		Size:    int(binary.BigEndian.Uint32(h[12:])),
		Load:    binary.BigEndian.Uint32(h[16:]),
		Entry:   binary.BigEndian.Uint32(h[20:]),
		DataCRC: binary.BigEndian.Uint32(h[24:]),
	}
	k.Version, _ = cutPrefix(k.Name, "Linux-")
	if UImageHeader+k.Size > len(b) || crc32.ChecksumIEEE(b[UImageHeader:UImageHeader+k.Size]) != k.DataCRC {
		return k, ErrBadDataCRC
	}
	k.App, _ = sim.ParseApp(b[UImageHeader:UImageHeader+k.Size], kernelDesc-UImageHeader)
	return k, nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// FDT structure block tokens.
const (
	fdtBeginNode = 1
	fdtEndNode   = 2
	fdtProp      = 3
	fdtNop       = 4
	fdtEnd       = 9
)

// DeviceTree builds a flattened device tree (version 17) whose root node
// has the model and compatible properties Linux prints and matches.
func DeviceTree(model, compatible string) []byte {
	var strs bytes.Buffer
	var st bytes.Buffer
	u32 := func(v uint32) { binary.Write(&st, binary.BigEndian, v) }
	pad := func() {
		for st.Len()%4 != 0 {
			st.WriteByte(0)
		}
	}
	prop := func(name string, val []byte) {
		off := strs.Len()
		strs.WriteString(name)
		strs.WriteByte(0)
		u32(fdtProp)
		u32(uint32(len(val)))
		u32(uint32(off))
		st.Write(val)
		pad()
	}
	u32(fdtBeginNode)
	u32(0) // the root's empty name, padded
	prop("#address-cells", []byte{0, 0, 0, 1})
	prop("#size-cells", []byte{0, 0, 0, 1})
	prop("model", append([]byte(model), 0))
	prop("compatible", append([]byte(compatible), 0))
	u32(fdtBeginNode)
	st.WriteString("chosen")
	st.WriteByte(0)
	pad()
	u32(fdtEndNode)
	u32(fdtEndNode)
	u32(fdtEnd)

	const hdr, rsv = 40, 16
	offStruct := hdr + rsv
	offStrings := offStruct + st.Len()
	total := offStrings + strs.Len()
	b := make([]byte, hdr+rsv, total)
	be := binary.BigEndian
	be.PutUint32(b[0:], FDTMagic)
	be.PutUint32(b[4:], uint32(total))
	be.PutUint32(b[8:], uint32(offStruct))
	be.PutUint32(b[12:], uint32(offStrings))
	be.PutUint32(b[16:], hdr)
	be.PutUint32(b[20:], 17)
	be.PutUint32(b[24:], 16)
	be.PutUint32(b[32:], uint32(strs.Len()))
	be.PutUint32(b[36:], uint32(st.Len()))
	b = append(b, st.Bytes()...)
	return append(b, strs.Bytes()...)
}

// ParseDeviceTree checks a flattened device tree's header and returns the
// root node's model and compatible properties.
func ParseDeviceTree(b []byte) (model, compatible string, err error) {
	be := binary.BigEndian
	if len(b) < 40 || be.Uint32(b) != FDTMagic {
		return "", "", ErrNoFDT
	}
	total := int(be.Uint32(b[4:]))
	offStruct, offStrings := int(be.Uint32(b[8:])), int(be.Uint32(b[12:]))
	sizeStrings, sizeStruct := int(be.Uint32(b[32:])), int(be.Uint32(b[36:]))
	if total > len(b) || total < 40 || be.Uint32(b[24:]) > 17 ||
		offStruct < 0 || sizeStruct < 0 || offStruct+sizeStruct > total ||
		offStrings < 0 || sizeStrings < 0 || offStrings+sizeStrings > total {
		return "", "", fmt.Errorf("%w: bad header", ErrNoFDT)
	}
	st := b[offStruct : offStruct+sizeStruct]
	strs := b[offStrings : offStrings+sizeStrings]
	depth := 0
	for i := 0; i+4 <= len(st); {
		tok := be.Uint32(st[i:])
		i += 4
		switch tok {
		case fdtBeginNode:
			j := bytes.IndexByte(st[i:], 0)
			if j < 0 {
				return model, compatible, fmt.Errorf("%w: unterminated node name", ErrNoFDT)
			}
			i += (j + 4) &^ 3
			depth++
		case fdtEndNode:
			depth--
		case fdtProp:
			if i+8 > len(st) {
				return model, compatible, fmt.Errorf("%w: truncated property", ErrNoFDT)
			}
			n, nameoff := int(be.Uint32(st[i:])), int(be.Uint32(st[i+4:]))
			i += 8
			if n < 0 || i+n > len(st) || nameoff >= len(strs) {
				return model, compatible, fmt.Errorf("%w: bad property", ErrNoFDT)
			}
			val := st[i : i+n]
			i += (n + 3) &^ 3
			if depth == 1 {
				switch cstr(strs[nameoff:]) {
				case "model":
					model = cstr(val)
				case "compatible":
					compatible = cstr(val)
				}
			}
		case fdtNop:
		case fdtEnd:
			return model, compatible, nil
		default:
			return model, compatible, fmt.Errorf("%w: bad token %#x", ErrNoFDT, tok)
		}
	}
	return model, compatible, fmt.Errorf("%w: no end token", ErrNoFDT)
}

// RootFS builds a root file system image of size bytes for the target
// board: a squashfs superblock, then the sim app descriptor carrying the
// application's version, which the unit's userland runs.
func RootFS(version, target string, size int) ([]byte, error) {
	sb := make([]byte, rootfsDesc)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], squashfsMagic)
	le.PutUint32(sb[4:], 42)         // inodes
	le.PutUint32(sb[8:], kernelTime) // mkfs time
	le.PutUint32(sb[12:], 128<<10)   // block size
	le.PutUint16(sb[20:], 4)         // compression: xz
	le.PutUint16(sb[22:], 17)        // block log
	le.PutUint16(sb[28:], 4)         // version 4.0
	le.PutUint64(sb[40:], uint64(size))
	return sim.BuildApp(sb, rootfsDesc, size, version, target)
}

// Root file system problems as Linux meets them.
var (
	errNoSquashfs = errors.New("no squashfs superblock")
)

// parseRootFS checks a root file system at the start of b (which may run
// on into the rest of the partition).
func parseRootFS(b []byte) (sim.AppDescriptor, error) {
	if len(b) < rootfsDesc || binary.LittleEndian.Uint32(b) != squashfsMagic {
		return sim.AppDescriptor{}, errNoSquashfs
	}
	return sim.ParseApp(b, rootfsDesc)
}

// Slot is where one A/B slot's images live on the eMMC, in bytes from the
// start of the device (multiples of 512).
type Slot struct {
	Name     string // "a" or "b", the value of the boot_slot variable
	Kernel   int64  // the uImage
	FDT      int64  // the device tree blob
	RootFS   int64  // the root file system: partition RootPart
	RootPart int    // Linux sees it as /dev/mmcblk0p<RootPart>
}

// Layout says where things live on the eMMC.
type Layout struct {
	EnvOffset int64 // U-Boot's environment (CONFIG_ENV_OFFSET)
	EnvSize   int64 // its size (CONFIG_ENV_SIZE), CRC header included
	KernelMax int64 // bytes bootcmd reads for a kernel
	FDTMax    int64 // bytes bootcmd reads for a device tree
	RootFSMax int64 // size of a root file system partition
	A, B      Slot
	// KernelSize and RootFSSize are the sizes of the images a factory
	// writes (SlotImages); 0 means 96 KiB and 160 KiB.
	KernelSize, RootFSSize int
}

func (l Layout) rootFSMax() int64 {
	if l.RootFSMax == 0 {
		return 1 << 20
	}
	return l.RootFSMax
}

func (l Layout) kernelSize() int {
	if l.KernelSize == 0 {
		return 96 << 10
	}
	return l.KernelSize
}

func (l Layout) rootFSSize() int {
	if l.RootFSSize == 0 {
		return 160 << 10
	}
	return l.RootFSSize
}

// BenchLayout is a compact layout for the virtual bench: each slot's
// kernel, device tree and root file system lie back to back, so that one
// bundle of 29 KiB (see Bundle) rewrites a whole slot in a few seconds at
// 115200 baud.
var BenchLayout = Layout{
	EnvOffset:  0x00100000,
	EnvSize:    0x2000,
	KernelMax:  0x4000,
	FDTMax:     0x400,
	RootFSMax:  0x00100000,
	A:          Slot{Name: "a", Kernel: 0x00200000, FDT: 0x00204000, RootFS: 0x00204400, RootPart: 2},
	B:          Slot{Name: "b", Kernel: 0x00400000, FDT: 0x00404000, RootFS: 0x00404400, RootPart: 3},
	KernelSize: 12 << 10,
	RootFSSize: 12 << 10,
}

// DefaultLayout is the layout the model uses unless told otherwise.
var DefaultLayout = Layout{
	EnvOffset: 0x00100000,
	EnvSize:   0x2000,
	KernelMax: 0x00800000,
	FDTMax:    0x00010000,
	RootFSMax: 0x02000000,
	A:         Slot{Name: "a", Kernel: 0x00200000, FDT: 0x00A00000, RootFS: 0x01000000, RootPart: 2},
	B:         Slot{Name: "b", Kernel: 0x04200000, FDT: 0x04A00000, RootFS: 0x05000000, RootPart: 3},
}

// Slot returns the slot named name ("a" or "b").
func (l Layout) Slot(name string) (Slot, bool) {
	switch name {
	case l.A.Name:
		return l.A, true
	case l.B.Name:
		return l.B, true
	}
	return Slot{}, false
}

// Fault is a way a slot's images can be broken, for building bricked units.
type Fault string

// Slot faults and what the unit then prints.
const (
	Healthy        Fault = ""               // boots
	Empty          Fault = "empty"          // nothing written: "Wrong Image Format for bootm command"
	BadKernelMagic Fault = "kernel-magic"   // "Wrong Image Format for bootm command"
	BadKernelHdr   Fault = "kernel-header"  // "Bad Header Checksum"
	BadKernelCRC   Fault = "kernel-crc"     // "Bad Data CRC"
	NoDeviceTree   Fault = "no-fdt"         // "ERROR: Did not find a cmdline Flattened Device Tree"
	NoRootFS       Fault = "no-rootfs"      // "VFS: Unable to mount root fs"
	CorruptRootFS  Fault = "rootfs-corrupt" // "Kernel panic - not syncing: No working init found"
	WrongBoard     Fault = "wrong-board"    // kernel for another board: silence after "Starting kernel ..."
)

// SlotImages builds a healthy slot's three images for layout l: a kernel
// and a root file system of the given version for board (of l's sizes),
// and its device tree.
func SlotImages(version, board string, l Layout) (kernel, fdt, rootfs []byte, err error) {
	kernel, err = KernelImage(version, board, l.kernelSize())
	if err != nil {
		return nil, nil, nil, err
	}
	rootfs, err = RootFS(version, board, l.rootFSSize())
	if err != nil {
		return nil, nil, nil, err
	}
	return kernel, DeviceTree(board, "unbrick,"+board), rootfs, nil
}

// Bundle returns a healthy slot's images as one piece to write at the
// slot's kernel offset (returned as off): the kernel, the device tree and
// the root file system each at its place, the gaps filled with zeros. It
// suits layouts whose slot parts lie close together (BenchLayout); it
// refuses a bundle over 64 MiB.
func Bundle(version, board string, l Layout, slot string) (data []byte, off int64, err error) {
	s, found := l.Slot(slot)
	if !found {
		return nil, 0, fmt.Errorf("ubootsim: no slot %q in the layout (want %q or %q)", slot, l.A.Name, l.B.Name)
	}
	kernel, fdt, rootfs, err := SlotImages(version, board, l)
	if err != nil {
		return nil, 0, err
	}
	if s.FDT < s.Kernel+int64(len(kernel)) || s.RootFS < s.FDT+int64(len(fdt)) {
		return nil, 0, fmt.Errorf("ubootsim: slot %s: the layout does not place kernel, device tree and root file system in that order", slot)
	}
	end := s.RootFS + int64(len(rootfs))
	if end-s.Kernel > 64<<20 {
		return nil, 0, fmt.Errorf("ubootsim: slot %s spans %d bytes: too large for one bundle", slot, end-s.Kernel)
	}
	b := make([]byte, end-s.Kernel)
	copy(b, kernel)
	copy(b[s.FDT-s.Kernel:], fdt)
	copy(b[s.RootFS-s.Kernel:], rootfs)
	return b, s.Kernel, nil
}
