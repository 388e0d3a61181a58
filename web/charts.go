package web

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Charts are drawn here as SVG, on the server: the page loads them as
// images from the station itself, so nothing comes from outside (the bench
// is often offline) and no script library is needed.

const (
	chartW  = 760
	chartH  = 260
	padL    = 56
	padR    = 16
	padT    = 30
	padB    = 42
	rowH    = 22
	colPass = "#2e7d32"
	colFPY  = "#1565c0"
	colUnit = "#c62828"
	colStat = "#ef6c00"
	colRef  = "#6a1b9a"
	colMisc = "#9e9e9e"
)

type svg struct{ b strings.Builder }

func newSVG(w, h int, title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12" role="img">`, w, h, w, h)
	fmt.Fprintf(&s.b, `<title>%s</title><rect width="100%%" height="100%%" fill="#fff"/>`, esc(title))
	s.text(8, 18, "start", "bold", title)
	return s
}

func esc(v string) string { return html.EscapeString(v) }

func (s *svg) text(x, y float64, anchor, weight, t string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-weight="%s">%s</text>`, x, y, anchor, weight, esc(t))
}

func (s *svg) small(x, y float64, anchor, t string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="10" fill="#555">%s</text>`, x, y, anchor, esc(t))
}

func (s *svg) rect(x, y, w, h float64, fill, tip string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.2f" fill="%s">`, x, y, math.Max(w, 0), math.Max(h, 0), fill)
	if tip != "" {
		fmt.Fprintf(&s.b, `<title>%s</title>`, esc(tip))
	}
	s.b.WriteString(`</rect>`)
}

func (s *svg) line(x1, y1, x2, y2 float64, stroke string, width float64) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`, x1, y1, x2, y2, stroke, width)
}

func (s *svg) polyline(pts []float64, stroke string, class string) {
	var p strings.Builder
	for i := 0; i+1 < len(pts); i += 2 {
		fmt.Fprintf(&p, "%.1f,%.1f ", pts[i], pts[i+1])
	}
	fmt.Fprintf(&s.b, `<polyline class="%s" points="%s" fill="none" stroke="%s" stroke-width="2"/>`, class, strings.TrimSpace(p.String()), stroke)
}

func (s *svg) legend(x, y float64, items ...string) {
	for i := 0; i+1 < len(items); i += 2 {
		s.rect(x, y-9, 10, 10, items[i], "")
		s.text(x+14, y, "start", "normal", items[i+1])
		x += 24 + 7*float64(len(items[i+1]))
	}
}

func (s *svg) String() string { return s.b.String() + `</svg>` }

func empty(title, what string) string {
	s := newSVG(chartW, 80, title)
	s.small(chartW/2, 50, "middle", what)
	return s.String()
}

// xLabels puts at most about ten labels under n evenly spaced points.
func (s *svg) xLabels(labels []string, x func(i int) float64, y float64) {
	step := max(1, (len(labels)+9)/10)
	for i := 0; i < len(labels); i += step {
		s.small(x(i), y, "middle", labels[i])
	}
}

// yieldChart draws first-pass and final yield per period.
func yieldChart(ps []Period, every string) string {
	title := "First-pass and final yield by " + every
	var pts []Period
	for _, p := range ps {
		if p.Counts.Visits > 0 {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return empty(title, "No unit was judged in this period.")
	}
	lo := 1.0
	for _, p := range pts {
		lo = math.Min(lo, p.Counts.FirstPassYield)
	}
	lo = math.Max(0, math.Floor(lo*10-0.0001)/10)
	s := newSVG(chartW, chartH, title)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(i int) float64 {
		if len(pts) == 1 {
			return padL + pw/2
		}
		return padL + pw*float64(i)/float64(len(pts)-1)
	}
	y := func(v float64) float64 { return padT + ph*(1-(v-lo)/(1-lo)) }
	for v := lo; v <= 1.0001; v += 0.1 {
		s.line(padL, y(v), chartW-padR, y(v), "#e0e0e0", 1)
		s.small(padL-6, y(v)+4, "end", fmt.Sprintf("%.0f%%", v*100))
	}
	var fpy, fin []float64
	for i, p := range pts {
		fpy = append(fpy, x(i), y(p.Counts.FirstPassYield))
		fin = append(fin, x(i), y(p.Counts.FinalYield))
	}
	s.polyline(fin, colPass, "final")
	s.polyline(fpy, colFPY, "first-pass")
	for i, p := range pts {
		fmt.Fprintf(&s.b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"><title>%s: first-pass %.1f%%, final %.1f%% of %d visits</title></circle>`,
			x(i), y(p.Counts.FirstPassYield), colFPY, esc(p.Label), 100*p.Counts.FirstPassYield, 100*p.Counts.FinalYield, p.Counts.Visits)
	}
	labels := make([]string, len(pts))
	for i, p := range pts {
		labels[i] = p.Label
	}
	s.xLabels(labels, x, chartH-padB+16)
	s.legend(chartW-300, 18, colFPY, "first-pass yield", colPass, "final yield")
	return s.String()
}

// volumeChart draws attempts per period, stacked by how they ended.
func volumeChart(ps []Period, every string) string {
	title := "Attempts by " + every
	if len(ps) == 0 {
		return empty(title, "No attempt in this period.")
	}
	var top int64 = 1
	for _, p := range ps {
		top = max(top, p.Counts.Attempts)
	}
	s := newSVG(chartW, chartH, title)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	bw := pw / float64(len(ps))
	x := func(i int) float64 { return padL + bw*float64(i) + bw/2 }
	s.small(padL-6, padT+4, "end", fmt.Sprint(top))
	s.small(padL-6, padT+ph, "end", "0")
	for i, p := range ps {
		c := p.Counts
		y := padT + ph
		for _, seg := range []struct {
			n   int64
			col string
		}{{c.Passed, colPass}, {c.UnitFaults, colUnit}, {c.StationFaults, colStat}, {c.Refused + c.Interrupted, colMisc}} {
			h := ph * float64(seg.n) / float64(top)
			y -= h
			s.rect(padL+bw*float64(i)+bw*0.1, y, bw*0.8, h, seg.col, "")
		}
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="transparent"><title>%s: %d attempts, %d passed, %d unit faults, %d station faults</title></rect>`,
			padL+bw*float64(i), float64(padT), bw, ph, esc(p.Label), c.Attempts, c.Passed, c.UnitFaults, c.StationFaults)
	}
	labels := make([]string, len(ps))
	for i, p := range ps {
		labels[i] = p.Label
	}
	s.xLabels(labels, x, chartH-padB+16)
	s.legend(chartW-420, 18, colPass, "passed", colUnit, "unit fault", colStat, "station fault", colMisc, "other")
	return s.String()
}

// uphChart draws units passed per active hour, by hour of day.
func uphChart(u UPH) string {
	title := fmt.Sprintf("Units per hour by hour of day (overall %.1f)", u.Overall)
	top := 0.0
	for _, v := range u.HourOfDay {
		top = math.Max(top, v)
	}
	if top == 0 {
		return empty(title, "No unit passed in this period.")
	}
	s := newSVG(chartW, chartH, title)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	bw := pw / 24
	for h, v := range u.HourOfDay {
		bh := ph * v / top
		s.rect(padL+bw*float64(h)+2, padT+ph-bh, bw-4, bh, colPass, fmt.Sprintf("%02d:00 %.1f units per hour", h, v))
		s.small(padL+bw*float64(h)+bw/2, chartH-padB+16, "middle", fmt.Sprintf("%02d", h))
	}
	s.small(padL-6, padT+4, "end", fmt.Sprintf("%.0f", top))
	s.small(padL-6, padT+ph, "end", "0")
	return s.String()
}

var faultColour = map[string]string{"unit": colUnit, "station": colStat, "refused": colRef}

// hbars draws one horizontal bar per row.
func hbars(title string, n int, label func(i int) string, value func(i int) float64, colour func(i int) string, note func(i int) string) string {
	if n == 0 {
		return empty(title, "Nothing in this period.")
	}
	n = min(n, 40)
	h := padT + n*rowH + 12
	s := newSVG(chartW, h, title)
	lw := 190.0
	pw := float64(chartW) - lw - 290
	for i := range n {
		y := float64(padT + i*rowH)
		s.text(lw-8, y+15, "end", "normal", label(i))
		s.rect(lw, y+3, pw*math.Min(math.Max(value(i), 0), 1), rowH-6, colour(i), note(i))
		s.small(lw+pw+8, y+15, "start", note(i))
	}
	return s.String()
}

// paretoChart draws the failure classes, most frequent first.
func paretoChart(fs []Failure) string {
	var top, total int64 = 1, 0
	for _, f := range fs {
		top, total = max(top, f.Count), total+f.Count
	}
	var cum int64
	notes := make([]string, len(fs))
	for i, f := range fs {
		cum += f.Count
		notes[i] = fmt.Sprintf("%d (%s, cumulative %.0f%%)", f.Count, f.Fault, 100*float64(cum)/float64(max(total, 1)))
	}
	return hbars("Failure Pareto by class and fault side", len(fs),
		func(i int) string { return fs[i].Class },
		func(i int) float64 { return float64(fs[i].Count) / float64(top) },
		func(i int) string {
			if c, ok := faultColour[fs[i].Fault]; ok {
				return c
			}
			return colMisc
		},
		func(i int) string { return notes[i] })
}

// stepsChart draws each step's median and p90.
func stepsChart(st []StepTime) string {
	top := 1.0
	for _, x := range st {
		top = math.Max(top, x.P90MS)
	}
	out := hbars("Time per step: median (bar) and p90", len(st),
		func(i int) string { return st[i].Name },
		func(i int) float64 { return st[i].MedianMS / top },
		func(int) string { return colFPY },
		func(i int) string {
			return fmt.Sprintf("median %s, p90 %s (%d)", dur(st[i].MedianMS), dur(st[i].P90MS), st[i].Count)
		})
	// The p90 marks, on the same scale as the bars.
	var marks strings.Builder
	pw := float64(chartW) - 190 - 290
	for i, x := range st[:min(len(st), 40)] {
		px := 190 + pw*x.P90MS/top
		y := float64(padT + i*rowH)
		fmt.Fprintf(&marks, `<line class="p90" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="2"/>`, px, y+2, px, y+rowH-2)
	}
	return strings.TrimSuffix(out, "</svg>") + marks.String() + "</svg>"
}

func dur(ms float64) string {
	if ms >= 60000 {
		return fmt.Sprintf("%.1f min", ms/60000)
	}
	if ms >= 1000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// groupChart draws first-pass yield per group.
func groupChart(by string, gs []Group) string {
	return hbars("First-pass yield by "+by, len(gs),
		func(i int) string {
			if gs[i].Key == "" {
				return "(none)"
			}
			return gs[i].Key
		},
		func(i int) float64 { return gs[i].Counts.FirstPassYield },
		func(int) string { return colFPY },
		func(i int) string {
			c := gs[i].Counts
			if c.Visits == 0 {
				return fmt.Sprintf("no unit judged (%d attempts)", c.Attempts)
			}
			return fmt.Sprintf("%.1f%% first pass, %.1f%% final, %d visits", 100*c.FirstPassYield, 100*c.FinalYield, c.Visits)
		})
}
