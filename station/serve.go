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
		Records: webRecords{st.Store}, Control: webControl{st},
		SupervisorPassword: password, Log: st.log,
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

// webRecords answers the dashboard from the database.
type webRecords struct{ s *db.Store }

func (r webRecords) Yield(ctx context.Context, by string, since time.Time) ([]web.YieldRow, error) {
	y, err := r.s.Yield(ctx, since, time.Time{})
	if err != nil {
		return nil, err
	}
	var groups []db.Group
	switch by {
	case "all":
		row := web.YieldRow{Key: "all", Units: y.Units, FirstPass: y.FirstPass, FirstPassYield: y.FirstPassYield, FinalYield: y.FinalYield,
			Attempts: y.Attempts, Passed: y.ByOutcome[string(db.Passed)], Refused: y.ByOutcome[string(db.Refused)],
			Interrupted: y.ByOutcome[string(db.Interrupted)], UnitFaults: y.ByFault["unit"], StationFaults: y.ByFault["station"]}
		if n := row.Passed + row.UnitFaults; n > 0 {
			row.Yield = float64(row.Passed) / float64(n)
		}
		return []web.YieldRow{row}, nil
	case "revision":
		groups = y.ByRevision
	case "slot":
		groups = y.BySlot
	case "recipe":
		groups = y.ByRecipe
	default:
		return nil, fmt.Errorf("unknown grouping %q", by)
	}
	rows := make([]web.YieldRow, len(groups))
	for i, g := range groups {
		rows[i] = web.YieldRow{Key: g.Key, Attempts: g.Attempts, Passed: g.Passed, UnitFaults: g.UnitFaults,
			StationFaults: g.StationFaults, Refused: g.Refused, Interrupted: g.Interrupted, Yield: g.Yield}
	}
	return rows, nil
}

func (r webRecords) Pareto(ctx context.Context, since time.Time) ([]web.ParetoRow, error) {
	ps, err := r.s.FailurePareto(ctx, since, time.Time{})
	if err != nil {
		return nil, err
	}
	rows := make([]web.ParetoRow, len(ps))
	for i, p := range ps {
		rows[i] = web.ParetoRow{Class: p.Class, Fault: p.Fault, Count: p.Count, Share: p.Share}
	}
	return rows, nil
}

func (r webRecords) ExportCSV(ctx context.Context, w io.Writer, since time.Time) error {
	return r.s.ExportCSV(ctx, w, db.Filter{Since: since})
}
