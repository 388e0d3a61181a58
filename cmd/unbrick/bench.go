package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/sim/ubootsim"
	"github.com/unbrick/unbrick/station"
	"github.com/unbrick/unbrick/web"
)

// BenchReport is what `unbrick bench` measures, as --json writes it.
type BenchReport struct {
	Time  time.Time `json:"time"`
	Units int       `json:"units"`
	Fast  bool      `json:"fast"` // unpaced lines: the figures mean nothing for speed
	// ScaleRatio is the wall time of the N mixed units at once over the
	// slowest single unit of the same kind and state alone.
	ScaleRatio  float64 `json:"scale_ratio"`
	MixWallS    float64 `json:"mix_wall_s"`
	SlowestOneS float64 `json:"slowest_single_s"`
	// LinkEfficiency per protocol: the least time the image's bytes need
	// on the link (see linkMinimum) over unbrick's measured time.
	LinkEfficiency map[string]float64 `json:"link_efficiency"`
	// VsPeer per protocol: unbrick's time over the peer tool's, same model,
	// same image, same run (below 1 is faster).
	VsPeer map[string]float64 `json:"vs_peer"`
	// VsPeerSameBaud per protocol where the peer's default rate differs
	// from the rate unbrick switches to (esprom: esptool-js at 115200 in
	// vs_peer): unbrick's time over the peer's at unbrick's rate. No
	// target; it says what the faster link alone does not explain.
	VsPeerSameBaud map[string]float64 `json:"vs_peer_same_baud"`
	// VsPeerHalf per protocol (STM32 and AVR): the same on the image with
	// its middle half 0xFF (see halfBlank), on units of their own.
	VsPeerHalf map[string]float64 `json:"vs_peer_half"`
	Peers      []PeerRun          `json:"peers"`
	// Of the station process alone (the models run in `unbrick sim
	// --bench`'s process).
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	MixRSSMB   float64 `json:"mix_rss_mb"`
	CPUSeconds float64 `json:"cpu_seconds"`
	EventP50MS float64 `json:"event_p50_ms"`
	EventP99MS float64 `json:"event_p99_ms"`
	Events     int     `json:"events"`  // tile updates received, over every client
	Clients    int     `json:"clients"` // websocket clients connected through the run
	DBRowsPerS float64 `json:"db_rows_per_s"`
	DBRows     int64   `json:"db_rows"`
	// Of the models' process, for scale: what the station is not charged.
	ModelsCPUSeconds float64                 `json:"models_cpu_seconds"`
	ModelsPeakRSSMB  float64                 `json:"models_peak_rss_mb"`
	Passed           int                     `json:"passed"`
	Failed           []string                `json:"failed,omitempty"`
	Station          *station.BenchRunResult `json:"station"`
}

// PeerRun is one protocol's side-by-side: unbrick and the peer tool on two
// identical units in their bootloader, the same image.
type PeerRun struct {
	Protocol   string  `json:"protocol"`
	Variant    string  `json:"variant,omitempty"` // "half": the image with its middle half 0xFF
	Model      string  `json:"model"`
	Bytes      int     `json:"bytes"`
	Peer       string  `json:"peer"`      // the command line
	PeerS      float64 `json:"peer_s"`    // 0 when it did not run
	UnbrickS   float64 `json:"unbrick_s"` // write and verify (U-Boot: the load into RAM)
	Unbrick    string  `json:"unbrick"`
	MinimumS   float64 `json:"minimum_s"` // linkMinimum: every byte written and read back (on the half-0xFF image too)
	PeerError  string  `json:"peer_error,omitempty"`
	OwnError   string  `json:"unbrick_error,omitempty"`
	Comparison string  `json:"comparison"` // what is timed on each side
	// The peer again at unbrick's rate, where its default differs (esprom),
	// on the same peer unit reset into its bootloader.
	PeerSameBaud      string  `json:"peer_same_baud,omitempty"`
	PeerSameBaudS     float64 `json:"peer_same_baud_s,omitempty"`
	PeerSameBaudError string  `json:"peer_same_baud_error,omitempty"`
}

// runBench measures the station against device models in another process.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "[--units N] [--json FILE] [--pprof DIR] [--fast]", stderr)
	units := fs.Int("units", 64, "how many mixed units to recover at once")
	jsonOut := fs.String("json", "", "write the figures as JSON to this file")
	pprofDir := fs.String("pprof", "", "write the station's CPU and heap profiles (cpu.pprof, heap.pprof) to this directory")
	fast := fs.Bool("fast", false, "do not pace bytes at the baud rate (for tests: the figures then mean nothing for speed)")
	clients := fs.Int("clients", 10, "websocket clients connected to the station through the run")
	dir := fs.String("dir", "", "working directory (default: a temporary one, removed after)")
	peers := fs.Bool("peers", true, "run each protocol's peer tool beside unbrick flash (stm32flash, avrdude, esptool-js, sb)")
	maxOn := fs.Int("max-on", 0, "the bench supply's inrush limit: units switched on per 100 ms (0: none)")
	bin := fs.String("unbrick", "", "the unbrick binary to run the models and the station with (default: this one)")
	stationDir := fs.String("station", "", "internal: run the station side on the bench served in this directory")
	listen := fs.String("listen", "127.0.0.1:0", "internal: where the station side serves its page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *stationDir != "" {
		return benchStation(ctx, *stationDir, *listen, *pprofDir, *maxOn, stdout)
	}
	if *units < 1 {
		return fmt.Errorf("--units must be at least 1, got %d", *units)
	}
	exe := *bin
	if exe == "" {
		e, err := os.Executable()
		if err != nil {
			return err
		}
		exe = e
	}
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "unbrick-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	work, _ = filepath.Abs(work)
	if *pprofDir != "" {
		p, _ := filepath.Abs(*pprofDir)
		pprofDir = &p
	}

	// The models, in their own process.
	simArgs := []string{"sim", "--bench", fmt.Sprint(*units), "--dir", filepath.Join(work, "bench")}
	if *fast {
		simArgs = append(simArgs, "--fast")
	}
	simCmd := exec.CommandContext(ctx, exe, simArgs...)
	simCmd.Cancel = func() error { return simCmd.Process.Signal(os.Interrupt) }
	simCmd.WaitDelay = 10 * time.Second
	simCmd.Stderr = stderr
	simOut, err := simCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := simCmd.Start(); err != nil {
		return err
	}
	stopSim := func() {
		simCmd.Process.Signal(os.Interrupt)
		simCmd.Wait()
	}
	defer stopSim()
	if _, err := waitLine(simOut, "ready", 2*time.Minute); err != nil {
		return fmt.Errorf("bench: the models did not come up: %w", err)
	}
	go io.Copy(io.Discard, simOut)
	fmt.Fprintf(stdout, "unbrick bench: %d mixed units served by `unbrick sim --bench` (pid %d)\n", *units, simCmd.Process.Pid)

	// The station, in its own process.
	stArgs := []string{"bench", "--station", filepath.Join(work, "bench"), "--listen", *listen, "--max-on", fmt.Sprint(*maxOn)}
	if *pprofDir != "" {
		stArgs = append(stArgs, "--pprof", *pprofDir)
	}
	stCmd := exec.CommandContext(ctx, exe, stArgs...)
	stCmd.Cancel = func() error { return stCmd.Process.Signal(os.Interrupt) }
	stCmd.WaitDelay = 30 * time.Second
	stCmd.Stderr = stderr
	stOut, err := stCmd.StdoutPipe()
	if err != nil {
		return err
	}
	stIn, err := stCmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := stCmd.Start(); err != nil {
		return err
	}
	defer stCmd.Wait()
	defer stIn.Close()
	line, err := waitLine(stOut, "listening ", 2*time.Minute)
	if err != nil {
		return fmt.Errorf("bench: the station did not come up: %w", err)
	}
	addr := strings.TrimSpace(line[strings.Index(line, "listening ")+len("listening "):])
	resultLine := make(chan string, 1)
	go func() {
		l, _ := waitLine(stOut, "result ", 24*time.Hour)
		resultLine <- l
		io.Copy(io.Discard, stOut)
	}()

	lat := &latencies{}
	wctx, stopClients := context.WithCancel(ctx)
	var cw sync.WaitGroup
	for i := range *clients {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/ws", nil)
		if err != nil {
			stopClients()
			return fmt.Errorf("bench: websocket client %d: %w", i+1, err)
		}
		cw.Add(1)
		go func() {
			defer cw.Done()
			lat.read(wctx, c)
		}()
	}
	fmt.Fprintf(stdout, "unbrick bench: station up (pid %d), page at http://%s/, %d websocket clients; recovering each kind alone, then all %d at once\n",
		stCmd.Process.Pid, addr, *clients, *units)
	if _, err := io.WriteString(stIn, "go\n"); err != nil {
		stopClients()
		return err
	}
	var res station.BenchRunResult
	select {
	case l := <-resultLine:
		i := strings.Index(l, "result ")
		if i < 0 {
			stopClients()
			stIn.Close()
			return fmt.Errorf("bench: the station ended without a result: %v", stCmd.Wait())
		}
		if err := json.Unmarshal([]byte(l[i+len("result "):]), &res); err != nil {
			stopClients()
			return fmt.Errorf("bench: the station's result: %w (%q)", err, l)
		}
	case <-ctx.Done():
		stopClients()
		return ctx.Err()
	}
	stIn.Close()
	stopClients()
	cw.Wait()
	if err := stCmd.Wait(); err != nil {
		return fmt.Errorf("bench: the station: %w", err)
	}

	rep := &BenchReport{Time: time.Now().UTC(), Units: *units, Fast: *fast, Station: &res, Clients: *clients,
		PeakRSSMB: res.PeakRSSMB, MixRSSMB: res.MixRSSMB, CPUSeconds: res.CPUSeconds, DBRows: res.DBRows, DBRowsPerS: res.DBRowsPerS,
		MixWallS: res.MixWallS, Failed: res.Failed, LinkEfficiency: map[string]float64{}, VsPeer: map[string]float64{},
		VsPeerSameBaud: map[string]float64{}, VsPeerHalf: map[string]float64{}}
	for _, j := range res.Mix {
		if j.Outcome == string(jobs.OutcomePassed) {
			rep.Passed++
		}
	}
	for _, j := range res.Singles {
		rep.SlowestOneS = max(rep.SlowestOneS, j.Seconds)
	}
	if rep.SlowestOneS > 0 {
		rep.ScaleRatio = res.MixWallS / rep.SlowestOneS
	}
	rep.Events, rep.EventP50MS, rep.EventP99MS = lat.summary()

	if *peers {
		m, err := readManifest(filepath.Join(work, "bench"))
		if err != nil {
			return err
		}
		rep.Peers = runPeers(ctx, exe, m, filepath.Join(work, "peers"), stderr)
		for _, p := range rep.Peers {
			if p.Variant == station.VariantHalf {
				if p.UnbrickS > 0 && p.PeerS > 0 {
					rep.VsPeerHalf[p.Protocol] = p.UnbrickS / p.PeerS
				}
				continue
			}
			if p.UnbrickS > 0 && p.MinimumS > 0 {
				rep.LinkEfficiency[p.Protocol] = p.MinimumS / p.UnbrickS
			}
			if p.UnbrickS > 0 && p.PeerS > 0 {
				rep.VsPeer[p.Protocol] = p.UnbrickS / p.PeerS
			}
			if p.UnbrickS > 0 && p.PeerSameBaudS > 0 {
				rep.VsPeerSameBaud[p.Protocol] = p.UnbrickS / p.PeerSameBaudS
			}
		}
	}
	stopSim()
	if ps := simCmd.ProcessState; ps != nil {
		rep.ModelsCPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rep.ModelsPeakRSSMB = float64(ru.Maxrss) / 1024
		}
	}
	printBench(stdout, rep)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unbrick bench: wrote %s\n", *jsonOut)
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("bench: %d jobs did not pass: %s", len(res.Failed), strings.Join(res.Failed, "; "))
	}
	return nil
}

// benchStation is the station side: it opens the bench served in dir,
// says where its page is ("listening ADDR"), waits for a line on stdin (the
// websocket clients are connected), runs, and prints "result JSON".
func benchStation(ctx context.Context, dir, listen, pprofDir string, maxOn int, stdout io.Writer) error {
	in := bufio.NewReader(os.Stdin)
	res, err := station.RunBench(ctx, station.BenchRunConfig{Dir: dir, DataDir: filepath.Join(dir, "..", "station"), Listen: listen,
		PprofDir: pprofDir, MaxOn: maxOn,
		Ready: func(addr string) error {
			fmt.Fprintf(stdout, "listening %s\n", addr)
			_, err := in.ReadString('\n')
			return err
		}})
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "result %s\n", b)
	return nil
}

// waitLine reads r's lines until one contains want.
func waitLine(r io.Reader, want string, within time.Duration) (string, error) {
	type got struct {
		line string
		err  error
	}
	c := make(chan got, 1)
	go func() {
		var b []byte
		one := make([]byte, 1)
		for {
			n, err := r.Read(one)
			if n == 1 {
				if one[0] == '\n' {
					if s := string(b); strings.Contains(s, want) {
						c <- got{s, nil}
						return
					}
					b = b[:0]
					continue
				}
				b = append(b, one[0])
			}
			if err != nil {
				c <- got{"", fmt.Errorf("output ended before %q: %w", want, err)}
				return
			}
		}
	}()
	select {
	case g := <-c:
		return g.line, g.err
	case <-time.After(within):
		return "", fmt.Errorf("no %q within %v", want, within)
	}
}

func readManifest(dir string) (*station.BenchManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, station.ManifestFile))
	if err != nil {
		return nil, err
	}
	var m station.BenchManifest
	return &m, json.Unmarshal(b, &m)
}

// latencies collects, for every tile update a websocket client receives,
// the time from the event that changed the tile to its arrival.
type latencies struct {
	mu sync.Mutex
	ms []float64
}

func (l *latencies) read(ctx context.Context, c *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var m web.Message
		if json.Unmarshal(b, &m) != nil || m.Type != "update" {
			continue
		}
		l.mu.Lock()
		for _, s := range m.Slots {
			if !s.Updated.IsZero() {
				l.ms = append(l.ms, float64(now.Sub(s.Updated))/float64(time.Millisecond))
			}
		}
		l.mu.Unlock()
	}
}

func (l *latencies) summary() (n int, p50, p99 float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ms) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(l.ms)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)] }
	return len(s), q(0.50), q(0.99)
}

func printBench(w io.Writer, r *BenchReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nfigure\tvalue\ttarget\t\n")
	row := func(name, val, target string, met bool, has bool) {
		v := ""
		if has {
			v = "ok"
			if !met {
				v = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, val, target, v)
	}
	row("units passed", fmt.Sprintf("%d of %d", r.Passed, r.Units), "", false, false)
	row("scale_ratio", fmt.Sprintf("%.3f (%.1f s / %.1f s)", r.ScaleRatio, r.MixWallS, r.SlowestOneS), "<= 1.05", r.ScaleRatio <= 1.05, !r.Fast)
	row("peak_rss_mb (station)", fmt.Sprintf("%.1f (%.1f while the mix ran)", r.PeakRSSMB, r.MixRSSMB), "< 64", r.PeakRSSMB < 64, true)
	row("cpu_seconds (station)", fmt.Sprintf("%.2f", r.CPUSeconds), "", false, false)
	row("event_p99_ms", fmt.Sprintf("%.1f (p50 %.1f, %d updates, %d clients)", r.EventP99MS, r.EventP50MS, r.Events, r.Clients), "< 50", r.EventP99MS < 50, true)
	row("models (other process)", fmt.Sprintf("%.2f CPU s over the whole run, %.1f MB peak", r.ModelsCPUSeconds, r.ModelsPeakRSSMB), "", false, false)
	row("db_rows_per_s", fmt.Sprintf("%.0f (%d rows)", r.DBRowsPerS, r.DBRows), "", false, false)
	for _, p := range r.Peers {
		if p.Variant == station.VariantHalf {
			// The image half 0xFF: the target is for what skipping
			// blank flash saves, verification unchanged.
			vs, ok := r.VsPeerHalf[p.Protocol]
			val := fmt.Sprintf("%.2f (unbrick %.2f s, peer %.2f s)", vs, p.UnbrickS, p.PeerS)
			if !ok {
				val = "- (" + strings.TrimSpace(p.PeerError+" "+p.OwnError) + ")"
			}
			row("vs_peer_half "+p.Protocol, val, "<= 0.6", vs <= 0.6, ok && !r.Fast)
			continue
		}
		eff := r.LinkEfficiency[p.Protocol]
		row("link_efficiency "+p.Protocol, fmt.Sprintf("%.2f (minimum %.2f s, unbrick %.2f s)", eff, p.MinimumS, p.UnbrickS), "", false, false)
		target := 1.0
		if p.Protocol == "esprom" || p.Protocol == "uboot" {
			target = 0.5
		}
		vs, ok := r.VsPeer[p.Protocol]
		val := fmt.Sprintf("%.2f (peer %.2f s)", vs, p.PeerS)
		if !ok {
			val = "- (" + strings.TrimSpace(p.PeerError+" "+p.OwnError) + ")"
		}
		row("vs_peer "+p.Protocol, val, fmt.Sprintf("<= %.1f", target), vs <= target, ok && !r.Fast)
		if p.PeerSameBaud != "" {
			val := "- (" + strings.TrimSpace(p.PeerSameBaudError+" "+p.OwnError) + ")"
			if same, ok := r.VsPeerSameBaud[p.Protocol]; ok {
				val = fmt.Sprintf("%.2f (peer at unbrick's rate %.2f s)", same, p.PeerSameBaudS)
			}
			row("vs_peer_same_baud "+p.Protocol, val, "", false, false)
		}
	}
	tw.Flush()
	for _, f := range r.Failed {
		fmt.Fprintln(w, "failed:", f)
	}
}

// errSkip marks a peer that is not installed.
var errSkip = errors.New("not installed")

// runPeers runs, for each protocol, `unbrick flash` on its flash unit and
// the peer tool on its peer unit, one after the other, nothing else
// running.
func runPeers(ctx context.Context, exe string, m *station.BenchManifest, work string, stderr io.Writer) []PeerRun {
	os.MkdirAll(work, 0o755)
	byRole := map[string]station.BenchUnit{}
	for _, u := range m.Units {
		if u.Role == station.RoleFlash || u.Role == station.RolePeer {
			byRole[u.Protocol+"/"+u.Variant+"/"+u.Role] = u
		}
	}
	var out []PeerRun
	for _, pv := range peerRuns() {
		pk, variant := pv.peerKind, pv.variant
		fu, ok1 := byRole[pk.protocol+"/"+variant+"/"+station.RoleFlash]
		pu, ok2 := byRole[pk.protocol+"/"+variant+"/"+station.RolePeer]
		if !ok1 || !ok2 {
			continue
		}
		img, err := os.ReadFile(fu.Image)
		if err != nil {
			continue
		}
		pr := PeerRun{Protocol: pk.protocol, Variant: variant, Model: pk.kind, Bytes: len(img), MinimumS: linkMinimum(pk.protocol, img).Seconds()}
		var own, peer time.Duration
		var oerr, perr error
		switch pk.protocol {
		case "uboot":
			pr.Comparison = "YMODEM load into RAM with loady at 115200, from its start to U-Boot's total"
			pr.Unbrick = "unbrick's YMODEM sender (bootloader/uboot) into loady"
			own, oerr = ubootLoad(ctx, fu.Link, img)
			pr.Peer = fmt.Sprintf("sb --ymodem -k %s (after loady %x)", fu.Image, ubootsim.KernelAddr)
			peer, perr = sbLoad(ctx, pu.Link, fu.Image, len(img))
		default:
			args := []string{"flash", "--port", fu.Link, "--protocol", pk.protocol, "--baud", "115200", "--no-start"}
			switch pk.protocol {
			case "esprom":
				args = append(args, "--address", fmt.Sprintf("0x%x", fu.Addr), "--options", fmt.Sprintf("flash_baud=%d", espFastBaud))
				pr.Comparison = fmt.Sprintf("connect, write and verify by MD5 (unbrick: the ROM, synced at 115200, CHANGE_BAUDRATE to %d, an MD5 delta check, "+
					"compressed 1 KiB blocks; esptool-js: its stub, uploaded at 115200, compressed 16 KiB blocks at %d, its default rate (vs_peer), "+
					"and again at %d after the stub starts (vs_peer_same_baud))", espFastBaud, esptoolJSDefaultBaud, espFastBaud)
			default:
				pr.Comparison = "connect, erase, write and verify by reading back at 115200"
				if variant == station.VariantHalf {
					pr.Comparison = halfComparison(pk.protocol)
				}
			}
			args = append(args, fu.Image)
			pr.Unbrick = "unbrick " + strings.Join(args, " ")
			own, oerr = timed(ctx, exe, args...)
			var pargs []string
			switch pk.protocol {
			case "stm32":
				pargs, perr = stm32flashArgs(pu.Link, fu.Image)
			case "avr":
				pargs = []string{"avrdude", "-c", "arduino", "-p", "m328p", "-P", pu.Link, "-b", "115200", "-U", "flash:w:" + fu.Image + ":r"}
			case "esprom":
				pargs, perr = esptoolJSArgs(pu.Link, fu.Addr, fu.Image, esptoolJSDefaultBaud)
			}
			if perr == nil {
				pr.Peer = strings.Join(pargs, " ")
				if tool := peerTool(pargs); tool == "" {
					perr = fmt.Errorf("%s: %w", pargs[0], errSkip)
				} else {
					peer, perr = timed(ctx, pargs[0], pargs[1:]...)
				}
			}
		}
		if pk.protocol == "esprom" {
			// The same peer unit, back in its ROM, at unbrick's rate.
			pr.PeerSameBaudS, pr.PeerSameBaud, pr.PeerSameBaudError = esptoolJSSameBaud(ctx, m, pu, fu)
		}
		if oerr == nil {
			pr.UnbrickS = own.Seconds()
		} else {
			pr.OwnError = oerr.Error()
		}
		if perr == nil {
			pr.PeerS = peer.Seconds()
		} else {
			pr.PeerError = perr.Error()
		}
		name := pk.protocol
		if variant != station.VariantDense {
			name += " (" + variant + ")"
		}
		fmt.Fprintf(stderr, "unbrick bench: %s: unbrick %.2f s, peer %.2f s %s%s\n", name, pr.UnbrickS, pr.PeerS, pr.OwnError, pr.PeerError)
		out = append(out, pr)
	}
	return out
}

// timed runs a command and returns its wall time; a failure carries its
// output.
func timed(ctx context.Context, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		s := out.String()
		if len(s) > 600 {
			s = s[len(s)-600:]
		}
		return d, fmt.Errorf("%s: %w: %s", name, err, s)
	}
	return d, nil
}
