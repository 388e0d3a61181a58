package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unbrick/unbrick/db"
)

// runRecords lists recovery records, or one attempt with its steps and
// console log, or exports them as CSV.
//
// The subcommands generate, bench, export, import, backup, prune and
// rebuild are in records_tools.go.
func runRecords(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := recordTools[args[0]]; ok {
			return sub(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("records", "[--data DIR] [--serial SN] [--slot N] [--attempt ID] [--csv] [--json]  (or records generate, bench, export, import, backup, prune, rebuild)", stderr)
	data := fs.String("data", "./var", "the data directory holding unbrick.db")
	serial := fs.String("serial", "", "only this unit's attempts")
	slot := fs.Int("slot", 0, "only this slot's attempts")
	attempt := fs.Int64("attempt", 0, "show one attempt in full: steps and console log")
	csv := fs.Bool("csv", false, "export the attempts as CSV")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "at most this many attempts")
	images := fs.Bool("images", false, "list the firmware catalog (the versions log) instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	s, err := db.Open(filepath.Join(*data, "unbrick.db"))
	if err != nil {
		return err
	}
	defer s.Close()
	f := db.Filter{Serial: *serial, Slot: *slot, Limit: *limit}
	switch {
	case *images:
		ims, err := s.Images(ctx, db.ImageFilter{})
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(ims)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SHA256\tNAME\tVERSION\tPURPOSE\tREVISIONS\tSIGNER\tSIZE\tADDED BY")
		for _, im := range ims {
			fmt.Fprintf(tw, "%.16s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", im.SHA256, im.Name, im.Version, im.Purpose, strings.Join(im.Targets, ","), im.Signer, im.Size, im.AddedBy)
		}
		return tw.Flush()
	case *attempt != 0:
		a, err := s.Attempt(ctx, *attempt)
		if err != nil {
			return fmt.Errorf("attempt %d: %w", *attempt, err)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(a)
		}
		fmt.Fprintf(stdout, "attempt %d  slot %d  unit %s  recipe %s v%d (%.12s)\n", a.ID, a.Slot, a.Serial, a.Recipe, a.RecipeVersion, a.RecipeSHA256)
		fmt.Fprintf(stdout, "image %s %s\noutcome %s %s %s\n", a.ImageVersion, a.ImageSHA256, a.Outcome, a.Class, a.Reason)
		for _, st := range a.Steps {
			fmt.Fprintf(stdout, "  %3d %-10s %-40s %-6s %s\n", st.Seq, st.Strategy, st.Name, st.Outcome, st.Detail)
		}
		fmt.Fprintf(stdout, "console:\n%s\n", a.Console)
		return nil
	case *csv:
		return s.ExportCSV(ctx, stdout, f)
	}
	as, err := s.Attempts(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(as)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tSTARTED\tSLOT\tUNIT\tRECIPE\tIMAGE\tOUTCOME\tCLASS\tTOOK")
	for _, a := range as {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%v\n", a.ID, a.Started.Format(time.DateTime), a.Slot, a.Serial, a.Recipe,
			a.ImageVersion, a.Outcome, a.Class, a.Duration().Round(100*time.Millisecond))
	}
	return tw.Flush()
}
