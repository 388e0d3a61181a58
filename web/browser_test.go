package web_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unbrick/unbrick/jobs"
)

// chromium returns the path of a Chromium or Chrome binary, or skips t.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("Chromium is not installed (looked for chromium, chromium-browser, google-chrome): install it with `apt-get install chromium` to run the browser test")
	return ""
}

// browser starts a headless Chromium for t and returns a context for its
// one tab, bounded by a generous deadline.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// Start the browser with no deadline (a deadline on the first run
	// would bound the browser's life), then bound the test's actions.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(cancel)
	return tctx
}

// waitFor polls the page until the JavaScript expression is true.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("tiles").innerText`))
		t.Fatalf("waiting for %s (%s): %v\npage shows:\n%s", what, expr, err, dump)
	}
}

// tileIs is a JavaScript test of slot n's tile: q(class) finds a part of
// the tile, shown(part) says whether it is on screen.
func tileIs(n int, cond string) string {
	return fmt.Sprintf(`(() => { const t = document.getElementById("slot-%d"); if (!t) return false;
		const q = (c) => t.querySelector("." + c);
		const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
		return %s; })()`, n, cond)
}

func TestOperatorPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped with -short")
	}
	b := newBenchSlots(t, 7)
	b.control.starts = make(chan int, 4)
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(b.ts.URL),
		chromedp.WaitVisible(chromedp.CSS("#slot-7")),
	); err != nil {
		t.Fatalf("loading the operator page: %v", err)
	}
	waitFor(t, ctx, "the page online", `document.getElementById("conn").textContent === "live"`)
	waitFor(t, ctx, "slot 1 empty", tileIs(1, `t.dataset.state === "empty" && q("state").textContent === "Empty"
		&& !shown(q("start")) && !shown(q("release")) && !shown(q("bar"))`))

	// A unit arrives: the tile offers Start, and Start posts.
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Present, Serial: "0x1F2E3D"})
	waitFor(t, ctx, "slot 2 present with Start", tileIs(2, `t.dataset.state === "present" && q("state").textContent === "Present"
		&& shown(q("start")) && !shown(q("release")) && q("serial").textContent.includes("0x1F2E3D")`))
	// The operator scans the unit's label (a scanner types fast and ends
	// with Enter), then taps Start: the serial goes with the start.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("AVR-000077\r")); err != nil {
		t.Fatalf("typing a scan: %v", err)
	}
	waitFor(t, ctx, "the scan badge", `(() => { const s = document.getElementById("scan"); return !s.hidden && s.textContent.includes("AVR-000077"); })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#slot-2 .start"))); err != nil {
		t.Fatalf("clicking Start on slot 2: %v", err)
	}
	select {
	case n := <-b.control.starts:
		if n != 2 {
			t.Errorf("Start on slot 2's tile started slot %d", n)
		}
	case <-ctx.Done():
		t.Fatal("Start on slot 2's tile posted nothing")
	}
	b.control.mu.Lock()
	scans := fmt.Sprint(b.control.scans)
	b.control.mu.Unlock()
	if scans != "[2 AVR-000077]" {
		t.Errorf("the scan went with the start as %s, want [2 AVR-000077]", scans)
	}
	waitFor(t, ctx, "the scan badge gone", `document.getElementById("scan").hidden`)
	waitFor(t, ctx, "slot 2 running", tileIs(2, `t.dataset.state === "running" && q("state").textContent === "Running"
		&& !shown(q("start")) && shown(q("bar"))`))

	// Steps and progress arrive live.
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindStep, Step: "erase"})
	waitFor(t, ctx, "slot 2 erasing", tileIs(2, `q("step").textContent === "erase" && t.dataset.progress === "0"`))
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindStep, Step: "write"})
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindProgress, Done: 512, Total: 1024})
	waitFor(t, ctx, "slot 2 half written", tileIs(2, `q("step").textContent === "write" && t.dataset.progress === "50"
		&& q("fill").style.width === "50%" && q("pct").textContent === "50%"
		&& q("bar").getAttribute("aria-valuenow") === "50"`))
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindProgress, Done: 1024, Total: 1024})
	waitFor(t, ctx, "slot 2 written", tileIs(2, `t.dataset.progress === "100" && q("fill").style.width === "100%"`))

	// Every state, with its own word and its own colour.
	b.bus.Publish(jobs.Event{Slot: 3, Kind: jobs.KindState, State: jobs.Present})
	b.bus.Publish(jobs.Event{Slot: 4, Kind: jobs.KindState, State: jobs.Running})
	b.bus.Publish(jobs.Event{Slot: 4, Kind: jobs.KindState, State: jobs.Passed, Serial: "P4"})
	b.bus.Publish(jobs.Event{Slot: 5, Kind: jobs.KindState, State: jobs.Running})
	b.bus.Publish(jobs.Event{Slot: 5, Kind: jobs.KindStep, Step: "verify"})
	b.bus.Publish(jobs.Event{Slot: 5, Kind: jobs.KindState, State: jobs.Failed, Text: "byte 0x100 reads 0x00", Class: "verify-mismatch",
		Fault: jobs.UnitFault, Hint: "Put the unit on the reject tray."})
	b.bus.Publish(jobs.Event{Slot: 6, Kind: jobs.KindState, State: jobs.Interrupted, Text: "the station stopped"})
	b.bus.Publish(jobs.Event{Slot: 7, Kind: jobs.KindState, State: jobs.Quarantined, Text: "3 different units failed in a row"})
	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindState, State: jobs.Running}) // slot 2 stays running
	waitFor(t, ctx, "slot 5 failed with reason and hint", tileIs(5, `t.dataset.state === "failed" && q("state").textContent === "Failed"
		&& q("reason").textContent.includes("verify-mismatch") && q("reason").textContent.includes("byte 0x100 reads 0x00")
		&& q("hint").textContent === "Put the unit on the reject tray." && q("step").textContent === "verify"`))
	waitFor(t, ctx, "slot 7 quarantined with Release", tileIs(7, `t.dataset.state === "quarantined" && shown(q("release")) && !shown(q("start"))`))
	waitFor(t, ctx, "slot 4 passed", tileIs(4, `t.dataset.state === "passed" && q("state").textContent === "Passed"
		&& !shown(q("start")) && !shown(q("release")) && q("pct").textContent === "100%"`))
	waitFor(t, ctx, "slot 6 interrupted", tileIs(6, `t.dataset.state === "interrupted"`))
	looks, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll(".tile")].map((t) => {
		const s = getComputedStyle(t);
		return {state: t.dataset.state, word: t.querySelector(".state").textContent, look: s.backgroundColor + " " + s.backgroundImage,
			height: String(t.getBoundingClientRect().height)};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	words, colours := map[string]string{}, map[string]string{}
	for _, l := range looks {
		if prev, ok := words[l["word"]]; ok && prev != l["state"] {
			t.Errorf("states %s and %s both read %q", prev, l["state"], l["word"])
		}
		words[l["word"]] = l["state"]
		if prev, ok := colours[l["look"]]; ok && prev != l["state"] {
			t.Errorf("states %s and %s look the same: %s", prev, l["state"], l["look"])
		}
		colours[l["look"]] = l["state"]
		var h float64
		fmt.Sscan(l["height"], &h)
		if h < 200 {
			t.Errorf("the %s tile is %v px high, want a big tile", l["state"], h)
		}
	}
	if len(words) != 7 {
		t.Errorf("the tiles show %d states (%v), want all 7", len(words), words)
	}
	present, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("#slot-3 .start").getBoundingClientRect().height`))
	if err != nil || present < 48 {
		t.Errorf("Start button height = %v px (%v), want at least 48 px for a gloved finger", present, err)
	}

	// Release asks for a supervisor, then posts as that supervisor.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#slot-7 .release"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the login dialog", `document.getElementById("login").open && document.getElementById("loginwhy").textContent.includes("slot 7")`)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#loginname"), "Ada"),
		chromedp.SendKeys(chromedp.CSS("#loginpassword"), "wrong"),
		chromedp.Click(chromedp.CSS("#loginok")),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the wrong password refused", `document.getElementById("loginerr").textContent.includes("wrong supervisor password")`)
	if _, released := b.control.calls(); len(released) != 0 {
		t.Errorf("released %v with a wrong password", released)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#loginpassword"), password),
		chromedp.Click(chromedp.CSS("#loginok")),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "slot 7 released", tileIs(7, `t.dataset.state === "empty" && !shown(q("release"))`))
	if _, released := b.control.calls(); fmt.Sprint(released) != "[7 Ada]" {
		t.Errorf("Control.Release calls = %v, want [7 Ada]", released)
	}
	waitFor(t, ctx, "the supervisor shown", `document.getElementById("super").textContent === "Log out Ada"`)
}

func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped with -short")
	}
	b := newBenchSlots(t, 2)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.ts.URL+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the first-pass yield", `document.getElementById("fpy").textContent === "75.0%"`)
	waitFor(t, ctx, "the Pareto", `document.querySelector("#pareto tbody").innerText.includes("verify-mismatch")`)
	waitFor(t, ctx, "per revision", `document.querySelector("#by-revision tbody").rows.length === 2`)
	waitFor(t, ctx, "per slot", `document.querySelector("#by-slot tbody").innerText.includes("66.7%")`)
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("csv").href`))
	if err != nil || href != b.ts.URL+"/api/export.csv?since=24h" {
		t.Errorf("CSV link = %q (%v), want %s/api/export.csv?since=24h", href, err, b.ts.URL)
	}
}
