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

// WebOptions say how the page is served.
type WebOptions struct {
	// OperatorLogin makes operators log in to run jobs; by default anyone
	// at the station's page runs them as "operator".
	OperatorLogin bool
	// Title names the station on its pages.
	Title string
}

// Serve serves the operator page, the dashboard and the API at addr. It
// returns the address it listens on and a function that stops it (open
// websockets included). Accounts are the record's (`unbrick user add`).
func (st *Station) Serve(addr string, o WebOptions) (string, func(), error) {
	ws := web.New(web.Config{
		Tracker: st.Tracker, Bus: st.Bus,
		Records: webRecords{s: st.Store}, Control: webControl{st}, History: webRecords{s: st.Store}, Metrics: st.metrics(),
		Accounts: webAccounts{st.Store}, Audit: webAudit{st.Store},
		OperatorLogin: o.OperatorLogin, Title: o.Title, Log: st.log,
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

// webControl lets the page start and cancel jobs and supervisors release
// slots.
type webControl struct{ st *Station }

func (c webControl) Start(slot int, serial, by string) error { return c.st.Start(slot, serial, by) }

// Cancel stops the slot's job: the runner powers the unit off and records
// the attempt as interrupted, cancelled by by.
func (c webControl) Cancel(slot int, by string) error {
	if !c.st.Pool.StopBy(slot, by) {
		return fmt.Errorf("slot %d runs no job", slot)
	}
	return nil
}

// StartedBy names who started the slot's job: a name from the page, or
// "auto" for a slot that starts its jobs by itself.
func (c webControl) StartedBy(slot int) string {
	by, _ := c.st.Pool.Operator(slot)
	return by
}

func (c webControl) Release(slot int, by string) error { return c.st.Release(slot, by) }

// webAccounts looks the page's logins up in the record.
type webAccounts struct{ s *db.Store }

func (a webAccounts) Account(ctx context.Context, name string) (web.Account, error) {
	u, err := a.s.User(ctx, name)
	if err != nil {
		return web.Account{}, err
	}
	return web.Account{Name: u.Name, Role: u.Role, Hash: u.Hash}, nil
}

// webAudit keeps the page's audit log in the record.
type webAudit struct{ s *db.Store }

func (a webAudit) Audit(ctx context.Context, e web.AuditEntry) error {
	return a.s.Audit(ctx, db.AuditEntry{At: e.At, Who: e.Who, Role: e.Role, Action: e.Action, Slot: e.Slot, Detail: e.Detail, Remote: e.Remote})
}

func (a webAudit) AuditLog(ctx context.Context, since time.Time, limit int) ([]web.AuditEntry, error) {
	es, err := a.s.AuditLog(ctx, since, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.AuditEntry, len(es))
	for i, e := range es {
		out[i] = web.AuditEntry{At: e.At, Who: e.Who, Role: e.Role, Action: e.Action, Slot: e.Slot, Detail: e.Detail, Remote: e.Remote}
	}
	return out, nil
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
