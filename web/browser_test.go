package web_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unbrick/unbrick/internal/peertest"
)

// chromium returns the path of a Chromium or Chrome binary, or skips t.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	peertest.Missing(t, "Chromium is not installed (looked for chromium, chromium-browser, google-chrome; Debian package chromium)")
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
