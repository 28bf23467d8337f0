package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// samples are measurements in seconds (or bytes, for memory).
type samples []float64

func durs(ds []time.Duration) samples {
	s := make(samples, len(ds))
	for i, d := range ds {
		s[i] = d.Seconds()
	}
	return s
}

// median is the middle value (the mean of the two middle ones for an even
// count).
func (s samples) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	t := slices.Sorted(slices.Values(s))
	n := len(t)
	if n%2 == 1 {
		return t[n/2]
	}
	return (t[n/2-1] + t[n/2]) / 2
}

// pct is the nearest-rank percentile p (0 < p <= 1).
func (s samples) pct(p float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	t := slices.Sorted(slices.Values(s))
	i := int(math.Ceil(p*float64(len(t)))) - 1
	return t[max(0, min(i, len(t)-1))]
}

// Units of Row values.
const (
	unitSeconds = "s"
	unitBytes   = "bytes"
	unitRate    = "lines/s" // messages (lines) per second
	// The network group's.
	unitByteRate = "bytes/s"
	unitConnRate = "conns/s"
	unitRatio    = "x"
)

// Row is one figure of the report. Value is the headline statistic (a
// median or p50); P90 is set where a distribution matters.
type Row struct {
	Name         string  `json:"name"`
	Unit         string  `json:"unit"`
	Value        float64 `json:"value"`
	P90          float64 `json:"p90,omitempty"`
	Baseline     float64 `json:"baseline,omitempty"`
	BaselineName string  `json:"baselineName,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"`
	Goal         string  `json:"goal,omitempty"`
	// OK is whether the goal is met; absent for information-only rows.
	OK      *bool     `json:"ok,omitempty"`
	Note    string    `json:"note,omitempty"`
	Samples []float64 `json:"samples,omitempty"`
}

// withBaseline sets the baseline and the ratio against it.
func (r Row) withBaseline(name string, v float64) Row {
	r.BaselineName, r.Baseline = name, v
	if v > 0 {
		r.Ratio = r.Value / v
	}
	return r
}

// goalRatio judges the ratio against limit; goalAbs judges the value.
func (r Row) goalRatio(limit float64) Row {
	ok := r.Ratio > 0 && r.Ratio <= limit
	r.Goal, r.OK = "<= "+strconv.FormatFloat(limit, 'g', -1, 64)+"x", &ok
	return r
}

// goalRatioMin wants the ratio at least limit (rates: higher is better).
func (r Row) goalRatioMin(limit float64) Row {
	ok := r.Ratio >= limit
	r.Goal, r.OK = ">= "+strconv.FormatFloat(limit, 'g', -1, 64)+"x", &ok
	return r
}

// goalOver judges how much the value exceeds the baseline.
func (r Row) goalOver(limit float64) Row {
	ok := r.Value-r.Baseline <= limit
	r.Goal, r.OK = "<= baseline + "+format(r.Unit, limit), &ok
	return r
}

func (r Row) goalAbs(limit float64) Row {
	ok := r.Value <= limit
	r.Goal, r.OK = "<= "+format(r.Unit, limit), &ok
	return r
}

// Host describes where the figures come from.
type Host struct {
	Accel       string  `json:"accel"`
	AccelReason string  `json:"accelReason"`
	Kernel      string  `json:"kernel"`
	QEMU        string  `json:"qemu"`
	CPUs        int     `json:"cpus"`
	LoadBefore  float64 `json:"loadBefore"`
	LoadAfter   float64 `json:"loadAfter"`
}

// Report is the whole run; -json prints it as is.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Host    Host      `json:"host"`
	Groups  []string  `json:"groups"`
	Runs    int       `json:"runs"`
	Execs   int       `json:"execs"`
	Files   int       `json:"files"`
	// The bridge group's parameters.
	Notifications int `json:"notifications"`
	RTTs          int `json:"rtts"`
	LineMiB       int `json:"lineMiB"`
	Faults        int `json:"faults"`
	// The network group's parameters.
	DownloadMiB int `json:"downloadMiB"`
	Conns       int `json:"conns"`
	Lookups     int `json:"lookups"`
	// The figures, in the order measured.
	Results   []Row    `json:"results"`
	Breakdown []Row    `json:"breakdown"`
	Notes     []string `json:"notes"`
	// LeftoverQEMU lists QEMU processes the cleanup had to kill; it must be
	// empty.
	LeftoverQEMU []int  `json:"leftoverQemu"`
	Error        string `json:"error,omitempty"`
}

func format(unit string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case unitBytes:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case unitRate:
		return fmt.Sprintf("%.0f /s", v)
	case unitByteRate:
		return fmt.Sprintf("%.1f MiB/s", v/(1<<20))
	case unitConnRate:
		return fmt.Sprintf("%.1f /s", v)
	case unitRatio:
		return fmt.Sprintf("%.2fx", v)
	case unitSeconds:
		switch a := math.Abs(v); {
		case a >= 1:
			return fmt.Sprintf("%.2f s", v)
		case a >= 10e-3:
			return fmt.Sprintf("%.1f ms", v*1e3)
		case a >= 1e-3:
			return fmt.Sprintf("%.2f ms", v*1e3)
		default:
			return fmt.Sprintf("%.0f µs", v*1e6)
		}
	}
	return fmt.Sprint(v)
}

func (rep *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *Report) writeText(w io.Writer) {
	h := rep.Host
	fmt.Fprintf(w, "acp-sandbox bench — %s (%s), kernel %s, QEMU %s, %d CPUs, load %.2f → %.2f\n",
		h.Accel, h.AccelReason, h.Kernel, h.QEMU, h.CPUs, h.LoadBefore, h.LoadAfter)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tresult\tbaseline\tratio\tgoal")
	for _, r := range rep.Results {
		base, ratio := "-", "-"
		if r.BaselineName != "" {
			base = fmt.Sprintf("%s (%s)", format(r.Unit, r.Baseline), r.BaselineName)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		goal := r.Goal
		if r.OK != nil {
			goal += map[bool]string{true: "  ok", false: "  MISS"}[*r.OK]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, format(r.Unit, r.Value), base, ratio, goal)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "where the time goes")
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  figure\tp50/median\tp90\tnote")
	for _, r := range rep.Breakdown {
		p90 := ""
		if r.P90 != 0 {
			p90 = format(r.Unit, r.P90)
		}
		note := r.Note
		if r.Ratio > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %.2fx %s", note, r.Ratio, r.BaselineName), "; ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Name, format(r.Unit, r.Value), p90, note)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	if rep.Error != "" {
		fmt.Fprintln(w, "ERROR: "+rep.Error)
	}
	left := "no QEMU process left"
	if len(rep.LeftoverQEMU) > 0 {
		left = fmt.Sprintf("QEMU processes %v had to be killed", rep.LeftoverQEMU)
	}
	fmt.Fprintf(w, "total runtime %s; cleanup: %s\n", time.Duration(rep.Seconds*float64(time.Second)).Round(100*time.Millisecond), left)
}
