package station

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/web"
)

// Serve serves the operator page, the dashboard and the API at addr. It
// returns the address it listens on and a function that stops it (open
// websockets included).
func (st *Station) Serve(addr, password string) (string, func(), error) {
	ws := web.New(web.Config{
		Tracker: st.Tracker, Bus: st.Bus,
		Records: webRecords{s: st.Store}, Control: webControl{st},
		SupervisorPassword: password, Log: st.log, Metrics: st.metrics(),
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("serve the page at %s: %w (is another station running? choose another --listen)", addr, err)
	}
	srv := &http.Server{Handler: ws, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ws.Close()
	}, nil
}

// webControl lets the page start jobs and supervisors release slots.
type webControl struct{ st *Station }

func (c webControl) Start(slot int) error { return c.st.Start(slot, "", "operator") }

func (c webControl) Release(slot int, by string) error { return c.st.Release(slot, by) }

// StartScanned starts a slot's job for the unit whose label was scanned.
func (c webControl) StartScanned(slot int, serial string) error {
	return c.st.Start(slot, serial, "operator")
}

// webRecords answers the dashboard from the database's rollups (see
// dashboard.go).
type webRecords struct {
	s      *db.Store
	shifts []db.Shift // nil: db.DefaultShifts
}

// yieldRow is a group's counts in the summary rows of /api/yield: units
// are the visits judged (see web.Dashboard).
func yieldRow(key string, c db.Counts) web.YieldRow {
	return web.YieldRow{Key: key, Units: int(c.Visits), FirstPass: int(c.FirstPass), FirstPassYield: c.FirstPassYield(),
		FinalYield: c.FinalYield(), Attempts: int(c.Attempts), Passed: int(c.Passed), UnitFaults: int(c.UnitFaults),
		StationFaults: int(c.StationFaults), Refused: int(c.Refused), Interrupted: int(c.Interrupted), Yield: c.AttemptYield()}
}

func (r webRecords) Yield(ctx context.Context, by string, since time.Time) ([]web.YieldRow, error) {
	gs, err := r.s.Groups(ctx, db.Range{Since: since}, by)
	if err != nil {
		return nil, err
	}
	rows := make([]web.YieldRow, 0, len(gs))
	for _, g := range gs {
		rows = append(rows, yieldRow(g.Key, g.Counts))
	}
	if by == "all" && len(rows) == 0 {
		rows = append(rows, yieldRow("all", db.Counts{}))
	}
	return rows, nil
}

func (r webRecords) Pareto(ctx context.Context, since time.Time) ([]web.ParetoRow, error) {
	ps, err := r.s.Pareto(ctx, db.Range{Since: since})
	if err != nil {
		return nil, err
	}
	rows := make([]web.ParetoRow, len(ps))
	for i, p := range ps {
		rows[i] = web.ParetoRow{Class: p.Class, Fault: p.Fault, Count: int(p.Count), Share: p.Share}
	}
	return rows, nil
}

func (r webRecords) ExportCSV(ctx context.Context, w io.Writer, since time.Time) error {
	return r.s.Export(ctx, w, "csv", db.Filter{Since: since})
}
