// Command bench runs the project's benchmarks once each, prints a table of
// their figures and writes them as JSON. `make bench` runs it.
//
// Speed and memory targets live here, never in timed tests. A benchmark
// states its target by reporting an "x-min" metric (actual time over the
// protocol's own minimum on the link); the table marks those above 1.10.
//
// Then it runs `unbrick bench --units N`: the whole station against device
// models in another process, side by side with the peer tools; its figures
// go into the JSON under "station_bench" (-units 0 skips it).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one benchmark's figures.
type Result struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	N       int                `json:"n"`
	Metrics map[string]float64 `json:"metrics"`
	Target  string             `json:"target,omitempty"`
	Met     *bool              `json:"met,omitempty"`
}

// target is the bound on x-min that issue #3 sets.
const target = 1.10

func main() {
	out := flag.String("out", "bench.json", "where to write the JSON results")
	pkgs := flag.String("pkgs", "./...", "packages to benchmark")
	run := flag.String("bench", ".", "benchmark name pattern")
	benchtime := flag.String("benchtime", "1x", "go test -benchtime")
	units := flag.Int("units", 64, "units for `unbrick bench` (0: skip it)")
	flag.Parse()

	cmd := exec.Command("go", "test", "-run", "^$", "-bench", *run, "-benchtime", *benchtime, "-benchmem", "-timeout", "60m", *pkgs)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	results := parse(&buf)
	printTable(results)
	doc := struct {
		Time    time.Time       `json:"time"`
		Results []Result        `json:"results"`
		Station json.RawMessage `json:"station_bench,omitempty"`
	}{time.Now().UTC(), results, nil}
	if *units > 0 {
		raw, serr := stationBench(*units)
		if serr != nil {
			fmt.Fprintln(os.Stderr, "bench: unbrick bench:", serr)
			if err == nil {
				err = serr
			}
		}
		doc.Station = raw
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if werr := os.WriteFile(*out, append(b, '\n'), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "bench:", werr)
		os.Exit(1)
	}
	fmt.Printf("\nwrote %s\n", *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: go test:", err)
		os.Exit(1)
	}
}

func parse(r io.Reader) []Result {
	var res []Result
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "pkg: ") {
			pkg = strings.TrimPrefix(line, "pkg: ")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		r := Result{Package: pkg, Name: f[0], N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r.Metrics[f[i+1]] = v
		}
		if x, ok := r.Metrics["x-min"]; ok {
			met := x <= target
			r.Met, r.Target = &met, fmt.Sprintf("x-min <= %.2f", target)
		}
		res = append(res, r)
	}
	return res
}

func printTable(res []Result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nbenchmark\ttime/op\tmin-s\tx-min\ttarget\tother")
	for _, r := range res {
		name := r.Package[strings.LastIndex(r.Package, "/")+1:] + "." + strings.TrimPrefix(r.Name, "Benchmark")
		var other []string
		for k, v := range r.Metrics {
			switch k {
			case "ns/op", "min-s", "x-min":
				continue
			}
			other = append(other, fmt.Sprintf("%s=%g", k, v))
		}
		verdict := ""
		if r.Met != nil {
			verdict = "ok"
			if !*r.Met {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", name, dur(r.Metrics["ns/op"]), num(r.Metrics, "min-s"), num(r.Metrics, "x-min"), verdict, strings.Join(other, " "))
	}
	w.Flush()
}

func dur(ns float64) string { return time.Duration(ns).Round(time.Microsecond).String() }

func num(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// stationBench builds unbrick and runs `unbrick bench --units n`, which
// prints its own table; it returns the JSON it wrote.
func stationBench(n int) (json.RawMessage, error) {
	dir, err := os.MkdirTemp("", "unbrick-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := dir + "/unbrick"
	build := exec.Command("go", "build", "-o", bin, "./cmd/unbrick")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, err
	}
	out := dir + "/station.json"
	cmd := exec.Command(bin, "bench", "--units", strconv.Itoa(n), "--json", out)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	runErr := cmd.Run()
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("%v (%v)", err, runErr)
	}
	return b, runErr
}
