package station

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/internal/peertest"
	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/espsim"
)

// One Chromium for the whole test binary (the machine is small); each test
// gets its own tab.
var chrome struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chrome.cancel != nil {
		chrome.cancel()
	}
	os.Exit(code)
}

// tab opens a tab of the shared headless Chromium with a viewport of w x h
// CSS pixels, bounded by a generous deadline.
func tab(t *testing.T, w, h int64) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("the page tests start Chromium; skipped with -short")
	}
	var path string
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		peertest.Missing(t, "Chromium is not installed (Debian package chromium)")
	}
	chrome.once.Do(func() {
		dir, err := os.MkdirTemp("", "unbrick-chromium-")
		if err != nil {
			chrome.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(dir),
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.NoFirstRun)
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil {
			chrome.err = err
		}
		chrome.ctx = ctx
		chrome.cancel = func() { cancelCtx(); cancelAlloc(); os.RemoveAll(dir) }
	})
	if chrome.err != nil {
		t.Fatalf("starting %s: %v", path, chrome.err)
	}
	ctx, cancel := chromedp.NewContext(chrome.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("opening a %dx%d tab: %v", w, h, err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 8*time.Minute)
	t.Cleanup(cancelT)
	return tctx
}

// wait polls the page until the JavaScript expression is true.
func wait(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(4*time.Minute)))
	if err != nil {
		dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("[data-slot]")].map((c) => c.dataset.slot + ":" + c.dataset.state + ":" + c.dataset.progress).join(" ")
			+ "\n" + document.getElementById("summary").innerText + "\n" + document.getElementById("toast").innerText`))
		t.Fatalf("waiting for %s (%s): %v\npage shows:\n%s", what, expr, err, dump)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("tapping %s: %v", sel, err)
	}
}

// cellIs is a JavaScript test of slot n's cell.
func cellIs(n int, cond string) string {
	return fmt.Sprintf(`(() => { const t = document.querySelector('[data-slot="%d"]'); if (!t) return false;
		const q = (c) => t.querySelector("." + c);
		return %s; })()`, n, cond)
}

// screenshot saves the tab as a PNG test artifact: in $UNBRICK_ARTIFACTS
// if set, else in the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("UNBRICK_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// allInView checks that the page shows n cells, each wholly inside the
// viewport, with no scrolling, big enough to read from two metres.
func allInView(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	type box struct {
		Slot                     int
		Left, Top, Right, Bottom float64
		Num, Word                float64 // font sizes, px
		Clipped                  bool    // some of its content does not fit
	}
	var got struct {
		W, H, ScrollW, ScrollH float64
		Cells                  []box
	}
	b := eval[string](t, ctx, `JSON.stringify({W: innerWidth, H: innerHeight,
		ScrollW: document.scrollingElement.scrollWidth, ScrollH: document.scrollingElement.scrollHeight,
		Cells: [...document.querySelectorAll("[data-slot]")].map((c) => { const r = c.getBoundingClientRect();
			return {Slot: Number(c.dataset.slot), Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom,
				Num: parseFloat(getComputedStyle(c.querySelector(".num")).fontSize),
				Word: parseFloat(getComputedStyle(c.querySelector(".word")).fontSize),
				Clipped: c.scrollHeight > c.clientHeight + 1 || [...c.querySelectorAll(".word, .top")].some((e) => e.scrollWidth > e.clientWidth + 1)}; })})`)
	if err := json.Unmarshal([]byte(b), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Cells) != n {
		t.Fatalf("the page shows %d cells, want %d", len(got.Cells), n)
	}
	if got.ScrollH > got.H || got.ScrollW > got.W {
		t.Errorf("the page scrolls: %vx%v of content in a %vx%v viewport", got.ScrollW, got.ScrollH, got.W, got.H)
	}
	for i, c := range got.Cells {
		if c.Slot != i+1 {
			t.Errorf("cell %d is slot %d, want slot %d", i, c.Slot, i+1)
		}
		if c.Left < 0 || c.Top < 0 || c.Right > got.W || c.Bottom > got.H {
			t.Errorf("slot %d's cell (%v,%v)-(%v,%v) is not inside the %vx%v viewport", c.Slot, c.Left, c.Top, c.Right, c.Bottom, got.W, got.H)
		}
		// Big enough for a gloved finger, and nothing cut off.
		if w, h := c.Right-c.Left, c.Bottom-c.Top; w < 80 || h < 70 || c.Clipped {
			t.Errorf("slot %d's cell is %vx%v px, clipped %v; want at least 80x70 with all of it showing", c.Slot, w, h, c.Clipped)
		}
		for _, o := range got.Cells[:i] {
			if c.Left < o.Right && o.Left < c.Right && c.Top < o.Bottom && o.Top < c.Bottom {
				t.Errorf("slot %d's cell overlaps slot %d's", c.Slot, o.Slot)
			}
		}
		// A 16 px word is about 4 mm high on a 7-inch 800x480 screen: the
		// least that reads from two metres with the colour and icon beside.
		if c.Num < 24 || c.Word < 16 {
			t.Errorf("slot %d: number %v px, word %v px; want at least 24 and 16 to read from two metres", c.Slot, c.Num, c.Word)
		}
	}
}

// pageBench is a virtual bench with every unit plugged in and waiting for
// the operator (no auto start), served on localhost.
type pageBench struct {
	*Demo
	addr string
	stop func()
}

func newPageBench(t *testing.T, units int) *pageBench {
	t.Helper()
	d, err := NewDemo(DemoConfig{Dir: t.TempDir(), Units: units})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, u := range d.Bench.Units() {
		if u.Kind.Label != nil {
			d.Scan(u.Spec.Slot, u.Kind.Label(u.Spec))
		}
		if err := u.Plug(); err != nil {
			t.Fatal(err)
		}
		d.Present(u.Spec.Slot)
	}
	p := &pageBench{Demo: d}
	p.serve(t, "127.0.0.1:0")
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *pageBench) serve(t *testing.T, addr string) {
	t.Helper()
	a, stop, err := p.Serve(addr, WebOptions{Title: "Bench 7"})
	if err != nil {
		t.Fatal(err)
	}
	p.addr, p.stop = a, stop
}

// TestPage32At800x480 drives the operator page in Chromium on a 7-inch
// screen against the station on a virtual bench of 32 units: every slot in
// view, a job started from the page moving to passed, a failing unit with
// its reason and what to do, a cancel that leaves the unit switched off and
// the attempt interrupted by whom, and the page catching up after its
// server restarts.
func TestPage32At800x480(t *testing.T) {
	ctx := tab(t, 800, 480)
	b := newPageBench(t, 32)
	// Slots 1 and 7 hold STM32F103 units, slot 4 an ESP32 whose flash is worn.
	const pass, fail, cancel, offline = 1, 4, 7, 2
	u4, _ := b.Bench.Unit(fail)
	m, ok := u4.Model.(*espsim.Model)
	if !ok {
		t.Fatalf("slot %d holds a %s, want an ESP32", fail, u4.Kind.Name)
	}
	m.SetFaults(espsim.Faults{FailPrograms: 1 << 20})

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+b.addr+"/")); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "the page live", `document.getElementById("conn").textContent === "live"`)
	wait(t, ctx, "32 cells ready", `document.querySelectorAll('[data-slot][data-state="present"]').length === 32`)
	allInView(t, ctx, 32)

	// A job started from the page reaches passed, its progress moving.
	click(t, ctx, fmt.Sprintf(`[data-slot="%d"]`, pass))
	wait(t, ctx, "the detail of slot 1", `document.getElementById("detail").open && document.getElementById("d-title").textContent.startsWith("Slot 1")`)
	for _, sel := range []string{"#d-start", "#d-close"} {
		h := eval[float64](t, ctx, `document.querySelector("`+sel+`").getBoundingClientRect().height`)
		w := eval[float64](t, ctx, `document.querySelector("`+sel+`").getBoundingClientRect().width`)
		if h < 48 || w < 48 {
			t.Errorf("%s is %vx%v px, want at least 48x48 for a gloved finger", sel, w, h)
		}
	}
	click(t, ctx, "#d-start")
	seen := map[int]bool{}
	timeLeft := false
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sp := eval[string](t, ctx, `(() => { const c = document.querySelector('[data-slot="1"]');
			return c.dataset.state + " " + c.dataset.progress + " " + document.getElementById("d-left").textContent; })()`)
		var st string
		var pct int
		fmt.Sscan(sp, &st, &pct)
		if strings.Contains(sp, "left in this step") {
			timeLeft = true
		}
		if st == "running" && pct > 0 && pct < 100 {
			seen[pct] = true
		}
		if st == "passed" {
			break
		}
		if st == "failed" || time.Now().After(deadline) {
			t.Fatalf("slot 1 is %s at %d%%, want passed (progress seen: %v)", st, pct, seen)
		}
		time.Sleep(20 * time.Millisecond) // sampling what the page shows, not synchronising
	}
	if len(seen) < 3 {
		t.Errorf("slot 1's progress showed %d values between 0 and 100 (%v), want it to move", len(seen), seen)
	}
	if !timeLeft {
		t.Error("slot 1's detail never said how much time its step had left")
	}
	wait(t, ctx, "slot 1 passed", cellIs(pass, `t.dataset.state === "passed" && q("word").textContent === "Passed" && q("icon").textContent === "✔"`))
	wait(t, ctx, "slot 1's console and model", `document.getElementById("d-console").textContent.includes("firmware v")
		&& document.getElementById("d-model").textContent.includes("sensor-b")`)
	click(t, ctx, "#d-close")

	// A failing unit says why and what to do, and the page raises an alert.
	click(t, ctx, fmt.Sprintf(`[data-slot="%d"]`, fail))
	click(t, ctx, "#d-start")
	click(t, ctx, "#d-close")
	wait(t, ctx, "slot 4 failed", cellIs(fail, `t.dataset.state === "failed" && q("word").textContent === "Failed"`))
	wait(t, ctx, "the failure alert", `(() => { const a = document.getElementById("alert"); return !a.hidden && a.textContent.includes("Slot 4 failed"); })()`)
	click(t, ctx, "#alert")
	wait(t, ctx, "slot 4's reason and action", `document.getElementById("d-title").textContent.startsWith("Slot 4")
		&& document.getElementById("d-reason").textContent.startsWith("Why: ") && document.getElementById("d-reason").textContent.length > 20
		&& document.getElementById("d-hint").textContent.startsWith("What to do: ") && document.getElementById("d-hint").textContent.length > 20
		&& !document.getElementById("d-retry").hidden && document.getElementById("alert").hidden`)
	wait(t, ctx, "slot 4's history", `document.getElementById("d-history").textContent.includes("failed")`)
	screenshot(t, ctx, "page-800x480-detail.png")
	click(t, ctx, "#d-close")

	// Cancel: the unit ends switched off, the attempt interrupted by whom.
	click(t, ctx, fmt.Sprintf(`[data-slot="%d"]`, cancel))
	click(t, ctx, "#d-start")
	wait(t, ctx, "slot 7 writing", cellIs(cancel, `t.dataset.state === "running" && Number(t.dataset.progress) > 0`))
	u7, _ := b.Bench.Unit(cancel)
	if !u7.Device.Powered() {
		t.Fatal("slot 7's unit is off while its job writes")
	}
	wait(t, ctx, "the Cancel button", `!document.getElementById("d-cancel").hidden`)
	click(t, ctx, "#d-cancel")
	wait(t, ctx, "slot 7 stopped", cellIs(cancel, `t.dataset.state === "interrupted" && q("word").textContent === "Stopped"`))
	if u7.Power.Level() != pgpio.Low || u7.Device.Powered() {
		t.Errorf("slot 7 after cancel: power line %v, unit powered %v; want the line low and the unit off", u7.Power.Level(), u7.Device.Powered())
	}
	as, err := b.Store.Attempts(context.Background(), db.Filter{Slot: cancel})
	if err != nil || len(as) != 1 {
		t.Fatalf("slot 7's attempts = %v, %v; want one", as, err)
	}
	if as[0].Outcome != db.Interrupted || !strings.Contains(as[0].Reason, "cancelled by operator") {
		t.Errorf("slot 7's attempt = %s %q, want interrupted, cancelled by operator", as[0].Outcome, as[0].Reason)
	}
	log, err := b.Store.AuditLog(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range log {
		actions = append(actions, fmt.Sprintf("%s %s %d", e.Who, e.Action, e.Slot))
	}
	if !strings.Contains(strings.Join(actions, ","), "operator cancel 7") {
		t.Errorf("the audit log %v has no cancel of slot 7 by operator", actions)
	}
	// Retried, the unit is a repeat visitor: its cell says so.
	wait(t, ctx, "the Retry button", `!document.getElementById("d-retry").hidden && document.getElementById("d-cancel").hidden`)
	click(t, ctx, "#d-retry")
	wait(t, ctx, "slot 7 running again, flagged as seen before", cellIs(cancel, `t.dataset.state === "running"
		&& !q("repeat").hidden && q("repeat").textContent === "↻1"`))
	wait(t, ctx, "the Cancel button again", `!document.getElementById("d-cancel").hidden`)
	click(t, ctx, "#d-cancel")
	wait(t, ctx, "slot 7 stopped again", cellIs(cancel, `t.dataset.state === "interrupted"`))
	click(t, ctx, "#d-close")
	wait(t, ctx, "the summary", `document.getElementById("s-passed").textContent === "1" && document.getElementById("s-units").textContent !== "–"`)
	screenshot(t, ctx, "page-800x480.png")

	// The server restarts; meanwhile slot 2's job runs to its end. The page
	// reconnects by itself and shows it.
	addr := b.addr
	b.stop()
	wait(t, ctx, "the page offline", `document.getElementById("conn").textContent.startsWith("offline")`)
	done := make(chan struct{})
	b.OnDone(func(r *jobs.Result) {
		if r.Slot == offline {
			close(done)
		}
	})
	if err := b.Start(offline, "", "auto"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("slot 2's job did not end")
	}
	st, _ := b.Tracker.Slot(offline)
	if got := eval[string](t, ctx, `document.querySelector('[data-slot="2"]').dataset.state`); got != "present" {
		t.Fatalf("while the server is down the page shows slot 2 %s, want its last known state present", got)
	}
	b.serve(t, addr)
	wait(t, ctx, "the page live again", `document.getElementById("conn").textContent === "live"`)
	wait(t, ctx, "slot 2 as the station has it", cellIs(offline, fmt.Sprintf(`t.dataset.state === %q`, st.State)))
	resp, err := http.Get("http://" + addr + "/api/slots")
	if err != nil {
		t.Fatal(err)
	}
	var views []struct {
		Slot  int    `json:"slot"`
		State string `json:"state"`
	}
	json.NewDecoder(resp.Body).Decode(&views)
	resp.Body.Close()
	for _, v := range views {
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-slot="%d"]').dataset.state`, v.Slot)); got != v.State {
			t.Errorf("after the restart the page shows slot %d %s, the station says %s", v.Slot, got, v.State)
		}
	}
}

// TestPageAfterStationRestart: the whole station stops while a job runs
// (the job is recorded interrupted, the unit switched off) and starts again
// on the same data and address; the page reconnects by itself and shows the
// new station's state, then follows it live.
func TestPageAfterStationRestart(t *testing.T) {
	ctx := tab(t, 800, 480)
	dir := t.TempDir()
	open := func(addr string) *pageBench {
		d, err := NewDemo(DemoConfig{Dir: dir, Units: 4})
		if err != nil {
			t.Fatal(err)
		}
		p := &pageBench{Demo: d}
		p.serve(t, addr)
		return p
	}
	b := open("127.0.0.1:0")
	u1, _ := b.Bench.Unit(1)
	if err := u1.Plug(); err != nil {
		t.Fatal(err)
	}
	b.Present(1)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+b.addr+"/")); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "the page live", `document.getElementById("conn").textContent === "live"`)
	click(t, ctx, `[data-slot="1"]`)
	click(t, ctx, "#d-start")
	click(t, ctx, "#d-close")
	wait(t, ctx, "slot 1 writing", cellIs(1, `t.dataset.state === "running" && Number(t.dataset.progress) > 0`))
	addr := b.addr
	b.stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if u1.Power.Level() != pgpio.Low {
		t.Error("slot 1's power line is high after the station stopped")
	}
	wait(t, ctx, "the page offline", `document.getElementById("conn").textContent.startsWith("offline")`)

	b = open(addr)
	defer func() { b.stop(); b.Close() }()
	wait(t, ctx, "the page live again", `document.getElementById("conn").textContent === "live"`)
	wait(t, ctx, "slot 1 as the new station has it", cellIs(1, `t.dataset.state === "empty"`))
	as, err := b.Store.Attempts(context.Background(), db.Filter{Slot: 1})
	if err != nil || len(as) != 1 || as[0].Outcome != db.Interrupted {
		t.Errorf("slot 1's attempts after the restart = %+v, %v; want one, interrupted", as, err)
	}
	u1, _ = b.Bench.Unit(1)
	if err := u1.Plug(); err != nil {
		t.Fatal(err)
	}
	b.Present(1)
	wait(t, ctx, "slot 1 ready again, live", cellIs(1, `t.dataset.state === "present" && q("word").textContent === "Ready"`))
}

// TestHistoryPage: a unit's history found by its serial number as a
// scanner types it: every attempt in order, with its steps, console,
// recipe and image.
func TestHistoryPage(t *testing.T) {
	ctx := tab(t, 800, 480)
	b := newPageBench(t, 1)
	done := make(chan *jobs.Result, 2)
	b.OnDone(func(r *jobs.Result) { done <- r })
	for range 2 {
		if err := b.Start(1, "", "Ada"); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.Outcome != jobs.OutcomePassed {
				t.Fatalf("slot 1: %s %v", r.Outcome, r.Failure)
			}
		case <-ctx.Done():
			t.Fatal("slot 1's job did not end")
		}
	}
	st, _ := b.Tracker.Slot(1)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+b.addr+"/history"),
		chromedp.SendKeys(chromedp.CSS("#q"), st.Serial+"\r")); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "two attempts", `document.querySelectorAll("#attempts details.passed").length === 2`)
	text := eval[string](t, ctx, `document.getElementById("attempts").innerText + document.querySelector("#attempts details:last-child").innerText`)
	for _, want := range []string{"Visit 1", "Visit 2", "Recipe", "Image", "sha256", "firmware v", "Started by"} {
		if !strings.Contains(text, want) {
			t.Errorf("the history page lacks %q:\n%s", want, text)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#attempts details:last-child tbody tr").length`); n < 3 {
		t.Errorf("the last attempt lists %d steps, want its steps", n)
	}
	screenshot(t, ctx, "history-800x480.png")
}

// TestPage64At1280x800: a 64-slot bench fits a 1280x800 screen.
func TestPage64At1280x800(t *testing.T) {
	ctx := tab(t, 1280, 800)
	b := newPageBench(t, 64)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+b.addr+"/")); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, "the page live", `document.getElementById("conn").textContent === "live"`)
	wait(t, ctx, "64 cells ready", `document.querySelectorAll('[data-slot][data-state="present"]').length === 64`)
	allInView(t, ctx, 64)
	// A few jobs running beside the waiting units, for the picture.
	for _, n := range []int{3, 9, 14, 20} {
		if err := b.Start(n, "", "auto"); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, ctx, "jobs running", `document.querySelectorAll('[data-state="running"], [data-state="passed"]').length >= 3`)
	allInView(t, ctx, 64)
	screenshot(t, ctx, "page-1280x800.png")
}
