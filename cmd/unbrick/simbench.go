package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/gpio"
	"github.com/unbrick/unbrick/sim/simbench"
	"github.com/unbrick/unbrick/station"
)

// peerKind is the model a protocol's flash and peer units are.
type peerKind struct{ protocol, kind string }

// peerKinds is the model each protocol's flash and peer units are.
var peerKinds = []peerKind{
	{"stm32", "stm32f103"}, {"avr", "atmega328p"}, {"esprom", "esp32"}, {"uboot", "uboot"},
}

// peerVariants lists the images each protocol's side-by-side runs with:
// the dense demo image for every protocol, and for STM32 and AVR, whose
// clients skip what erased flash already holds, the same image half 0xFF
// too (see halfBlank).
func peerVariants(protocol string) []string {
	if protocol == "stm32" || protocol == "avr" {
		return []string{station.VariantDense, station.VariantHalf}
	}
	return []string{station.VariantDense}
}

// peerRun is one side-by-side: a protocol's model and an image variant.
type peerRun struct {
	peerKind
	variant string
}

// peerRuns lists the side-by-sides `unbrick bench` runs, in order.
func peerRuns() []peerRun {
	var out []peerRun
	for _, pk := range peerKinds {
		for _, v := range peerVariants(pk.protocol) {
			out = append(out, peerRun{pk, v})
		}
	}
	return out
}

// halfBlank returns img with its middle half, [len/4, 3*len/4), set to
// 0xFF: what real firmware often looks like, code at the start, a blank
// gap, then data (tables, a file system, calibration) at the end. The
// bounds fall on 1 KiB for the demo images (24 KiB STM32, 8 KiB AVR), so
// the gap is whole STM32 pages and 256-byte blocks and whole AVR pages.
// Its application checksum no longer matches: the side-by-side flashes
// with --no-start and never boots it.
func halfBlank(img []byte) []byte {
	out := append([]byte(nil), img...)
	for i := len(out) / 4; i < 3*len(out)/4; i++ {
		out[i] = 0xFF
	}
	return out
}

// serveModels serves the units `unbrick bench` measures a station against,
// in this process: n mixed units as the demo has them, one unit of each
// kind and state of the mix to recover alone, and for each protocol two
// units waiting in their bootloader, one for `unbrick flash` and one for
// the real tool people use today. Their ports are linked in dir, their
// lines are served on dir/lines.sock (gpio.Remote) and dir/bench.json
// says which is which. It serves until ctx ends.
func serveModels(ctx context.Context, n int, dir string, fast bool, stdout io.Writer) error {
	if dir == "" {
		return errors.New("--bench needs --dir: where the ports, the lines' socket and the manifest go")
	}
	keys, err := station.InstallExamples(dir)
	if err != nil {
		return err
	}
	book, err := station.LoadBook(filepath.Join(dir, "recipes"), keys)
	if err != nil {
		return err
	}
	mix, err := station.BenchMix(book, n)
	if err != nil {
		return err
	}
	b, err := simbench.New(filepath.Join(dir, "ports"), simbench.Kinds())
	if err != nil {
		return err
	}
	defer b.Close()
	m := station.BenchManifest{Socket: filepath.Join(dir, "lines.sock"), Fast: fast}
	add := func(slot int, role string, su station.SimUnit, stay bool) (*simbench.Unit, error) {
		k, _ := b.Kind(su.Kind)
		spec := simbench.Spec{Slot: slot, Kind: su.Kind, Board: simbench.DemoBoard(su.Kind), Revision: "A", State: su.State,
			Version: "1.0.0", Seed: uint64(1000 + slot), Fast: fast}
		if su.Recipe != "" {
			plan := book.Plans[su.Recipe]
			if len(plan.Revisions) > 0 {
				spec.Revision = plan.Revisions[0]
			}
			if plan.Model != "" {
				spec.Board = plan.Model
			}
		}
		if stay {
			spec.Options = map[string]string{"stay": "true"}
		}
		u, err := b.Add(spec)
		if err != nil {
			return nil, err
		}
		pn, bn, rn := simbench.LineNames(slot)
		bu := station.BenchUnit{Slot: slot, Role: role, Kind: su.Kind, Protocol: k.Protocol, State: su.State, Recipe: su.Recipe,
			Revision: spec.Revision, Board: spec.Board, Link: u.Link, Power: pn, Reset: rn}
		if k.HasStrap {
			bu.Boot = bn
		}
		if k.Label != nil {
			bu.Label = k.Label(spec)
		}
		m.Units = append(m.Units, bu)
		return u, nil
	}
	for i, su := range mix {
		if _, err := add(i+1, station.RoleMix, su, false); err != nil {
			return err
		}
	}
	slot := n
	seen := map[station.SimUnit]bool{}
	for _, su := range mix {
		if seen[su] {
			continue
		}
		seen[su] = true
		slot++
		if _, err := add(slot, station.RoleSingle, su, false); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return err
	}
	for _, pk := range peerKinds {
		k, _ := b.Kind(pk.kind)
		dense, addr, err := k.Image("2.0.0", simbench.DemoBoard(pk.kind))
		if err != nil {
			return err
		}
		for _, variant := range peerVariants(pk.protocol) {
			img, name := dense, pk.protocol+".bin"
			if variant == station.VariantHalf {
				img, name = halfBlank(dense), pk.protocol+"-half.bin"
			}
			path := filepath.Join(dir, "images", name)
			if err := os.WriteFile(path, img, 0o644); err != nil {
				return err
			}
			for _, role := range []string{station.RoleFlash, station.RolePeer} {
				slot++
				u, err := add(slot, role, station.SimUnit{Kind: pk.kind, State: simbench.Bricked}, true)
				if err != nil {
					return err
				}
				bu := &m.Units[len(m.Units)-1]
				bu.Image, bu.Addr, bu.Variant = path, addr, variant
				// In its bootloader, as `unbrick sim --model` leaves a unit.
				if k.HasStrap {
					u.Boot.Out(k.Strap)
				}
				u.Reset.Out(!k.ResetActive)
				u.Power.Out(pgpio.High)
				if !k.HasStrap && pk.protocol == "avr" {
					u.Reset.Out(k.ResetActive)
					u.Reset.Out(!k.ResetActive)
				}
			}
		}
	}
	for _, u := range b.Units() {
		if err := u.Plug(); err != nil {
			return fmt.Errorf("slot %d: %w", u.Spec.Slot, err)
		}
	}
	os.Remove(m.Socket)
	l, err := net.Listen("unix", m.Socket)
	if err != nil {
		return fmt.Errorf("serve the lines: %w", err)
	}
	served := make(chan error, 1)
	go func() {
		served <- gpio.ServeLines(ctx, l, func(name string) (pgpio.PinIO, error) {
			if p := b.Bank.Lookup(name); p != nil {
				return p, nil
			}
			return nil, fmt.Errorf("no line %s on this bench (lines: sim:slotN.power, .boot, .reset)", name)
		})
	}()
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, station.ManifestFile), mb, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "unbrick sim: serving %d units (%d mixed) in %s; ready\n", len(m.Units), n, dir)
	err = <-served
	fmt.Fprintf(stdout, "unbrick sim: stopped\n")
	return err
}
