package station

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/firmware"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/espsim"
)

// TestDemoRecoversEveryUnit runs the virtual bench end to end on real
// pseudo-terminals opened through go.bug.st/serial, with the SQLite record:
// every bricked unit is recovered, and the record holds each unit and a
// passed attempt with the image hash and the console log.
func TestDemoRecoversEveryUnit(t *testing.T) {
	dir := t.TempDir()
	// Every family: the default kinds are every kind with a released recipe.
	d, err := NewDemo(DemoConfig{Dir: dir, Units: 5, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := d.RunAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != jobs.OutcomePassed {
			t.Errorf("slot %d: %s %v", r.Slot, r.Outcome, r.Failure)
		}
	}
	for _, s := range d.Tracker.Slots() {
		if s.State != jobs.Passed || s.Serial == "" || s.Progress != 1 {
			t.Errorf("tile %d = %+v, want passed with a serial number", s.Slot, s)
		}
	}
	units, err := d.Store.Units(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 5 {
		t.Errorf("the record holds %d units, want 5", len(units))
	}
	as, err := d.Store.Attempts(ctx, db.Filter{Outcome: db.Passed})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 5 {
		t.Fatalf("the record holds %d passed attempts, want 5", len(as))
	}
	for _, a := range as {
		full, err := d.Store.Attempt(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(full.ImageSHA256) != 64 || full.ImageVersion == "" || !strings.Contains(full.Console, "firmware v"+full.ImageVersion) {
			t.Errorf("attempt %d: image %q, console %q; want the image hash and the new version's banner", a.ID, full.ImageSHA256, full.Console)
		}
	}
	// The catalog lists the images the recipes write, with their bytes in
	// the content-addressed store.
	ims, err := d.Store.Images(ctx, db.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ims) < 3 {
		t.Errorf("the catalog holds %d images, want at least the three recipes' images", len(ims))
	}
	for _, im := range ims {
		if b, err := os.ReadFile(filepath.Join(dir, "images", im.SHA256)); err != nil || firmware.SHA256(b) != im.SHA256 {
			t.Errorf("image %s %s: stored bytes missing or wrong (%v)", im.Name, im.SHA256, err)
		}
		if im.Version == "" || im.Purpose == "" || im.AddedBy == "" {
			t.Errorf("catalog entry %+v lacks its version, purpose or origin", im)
		}
	}
	// The page's API says the same, in the shape the issue gives.
	addr, stop, err := d.Serve("127.0.0.1:0", WebOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/api/slots")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tiles []struct {
		Slot     int     `json:"slot"`
		State    string  `json:"state"`
		Step     string  `json:"step"`
		Progress float64 `json:"progress"`
		Serial   string  `json:"serial"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tiles); err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 5 {
		t.Fatalf("GET /api/slots gave %d tiles, want 5", len(tiles))
	}
	for _, tile := range tiles {
		if tile.State != "passed" || tile.Progress != 1 || tile.Serial == "" {
			t.Errorf("GET /api/slots tile %+v, want passed at 1 with a serial", tile)
		}
	}
	// Every unit was left off with its strap released.
	for _, u := range d.Bench.Units() {
		if u.Device.Powered() {
			t.Errorf("slot %d is powered after its job", u.Spec.Slot)
		}
	}
}

// TestOneFamilyFailingStallsNoOther: a unit of one family whose flash fails
// (an ESP32 with worn flash) fails with its reason while a unit of every
// other family is recovered beside it.
func TestOneFamilyFailingStallsNoOther(t *testing.T) {
	d, err := NewDemo(DemoConfig{Dir: t.TempDir(), Units: 5, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bad := 0
	for _, u := range d.Bench.Units() {
		if m, ok := u.Model.(*espsim.Model); ok {
			m.SetFaults(espsim.Faults{FailPrograms: 1 << 20})
			bad = u.Spec.Slot
		}
	}
	if bad == 0 {
		t.Fatal("the demo bench has no ESP32 unit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := d.RunAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		switch {
		case r.Slot == bad && (r.Outcome != jobs.OutcomeFailed || r.Failure.Fault != jobs.UnitFault || r.Failure.Reason == ""):
			t.Errorf("slot %d (worn flash): %s %+v, want a unit fault with a reason", r.Slot, r.Outcome, r.Failure)
		case r.Slot != bad && r.Outcome != jobs.OutcomePassed:
			t.Errorf("slot %d: %s %v, want passed beside the failing unit", r.Slot, r.Outcome, r.Failure)
		}
	}
}
